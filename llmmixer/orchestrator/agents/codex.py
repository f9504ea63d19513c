"""Codex (``@openai/codex``): ``codex exec --json``.

- Endpoint: Codex ignores ``OPENAI_BASE_URL`` for its built-in provider (which also tries a Responses WebSocket
  first), so HOME gets a ``.codex/config.toml`` with a ``model_provider`` of our own: ``base_url`` and
  ``wire_api = "responses"``, the key read from ``OPENAI_API_KEY`` (``env_key``). Analytics, feedback, update
  checks, plugins and apps are off in the same file.
- Approvals: ``--dangerously-bypass-approvals-and-sandbox`` (Codex's own sandbox off: the runner's is around it);
  ``--skip-git-repo-check`` because a worktree's ``.git`` is a file Codex's check may not follow.
- Resume: ``codex exec resume [options] THREAD PROMPT`` (the ``thread_id`` of ``thread.started``), its
  transcript under ``$CODEX_HOME/sessions/``.
- Stream: ``thread.started``, ``turn.started``, ``item.started`` / ``item.completed`` (``agent_message``,
  ``command_execution``, ``file_change``, ``mcp_tool_call``…), ``turn.completed`` with ``usage``, ``turn.failed``.
  Codex reports no cost: it is priced from our table for the model, when the model is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import AgentCLI, AgentEventData, StreamReport, clip, small

__all__ = ["Codex"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class Codex(AgentCLI):
    name = "codex"
    binary = "codex"
    npm_package = "@openai/codex"
    key_vars = ("OPENAI_API_KEY",)
    base_url_var = "OPENAI_BASE_URL"
    gateway_path = "/v1"
    default_model = "gpt-5"

    def home_files(self, home: Path, *, base_url: str | None, model: str | None) -> dict[str, str]:
        lines = [
            f"model = {_toml(model or self.default_model or 'gpt-5')}",
            'model_provider = "llmmixer"',
            'approval_policy = "never"',
            'sandbox_mode = "danger-full-access"',
            "check_for_update_on_startup = false",
            "",
            "[model_providers.llmmixer]",
            'name = "llmmixer"',
            f"base_url = {_toml(base_url or DEFAULT_BASE_URL)}",
            'env_key = "OPENAI_API_KEY"',
            'wire_api = "responses"',
            "supports_websockets = false",
            "",
            "[analytics]",
            "enabled = false",
            "",
            "[feedback]",
            "enabled = false",
            "",
            "[features]",
            "plugins = false",
            "apps = false",
            "",
            "[otel]",
            'exporter = "none"',
            "",
            "[tui]",  # tips include an announcement fetched from raw.githubusercontent.com
            "show_tooltips = false",
            "",
        ]
        return {".codex/config.toml": "\n".join(lines)}

    def environment(self, home: Path, *, base_url: str | None) -> dict[str, str]:
        return {"CODEX_HOME": str(home / ".codex")}

    def argv(self, task: str, *, model: str | None, extra: list[str], resume: str | None = None) -> list[str]:
        args = ["exec", *(["resume"] if resume else []), "--json", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox"]
        if model:
            args += ["--model", model]
        return [*args, *extra, *([resume] if resume else []), task]

    def read(self, line: dict[str, Any], report: StreamReport) -> list[AgentEventData]:
        kind = line.get("type")
        out: list[AgentEventData] = []
        if kind == "thread.started":
            report.session_id = line.get("thread_id")
        elif kind in ("item.started", "item.completed"):
            item = line.get("item") or {}
            item_type = item.get("type")
            if item_type == "agent_message" and kind == "item.completed" and item.get("text"):
                report.text = item["text"]
                out.append(("agent.text", {"text": item["text"]}))
            elif item_type == "command_execution":
                if kind == "item.started":
                    out.append(("agent.tool_call", {"tool": "exec_command", "id": item.get("id"),
                                                    "input": {"cmd": clip(item.get("command", ""))}}))
                    out.append(("agent.command", {"command": clip(item.get("command", ""))}))
                else:
                    out.append(("agent.tool_result", {"id": item.get("id"),
                                                      "output": clip(item.get("aggregated_output", "")),
                                                      "exit_code": item.get("exit_code"),
                                                      "is_error": item.get("status") == "failed"}))
            elif item_type == "file_change" and kind == "item.completed":
                for change in item.get("changes") or []:
                    out.append(("agent.file_changed", {"path": change.get("path"), "tool": change.get("kind")}))
            elif item_type == "mcp_tool_call" and kind == "item.started":
                out.append(("agent.tool_call", {"tool": f"{item.get('server')}.{item.get('tool')}",
                                                "id": item.get("id"), "input": small(item.get("arguments"))}))
        elif kind == "turn.completed":
            usage = line.get("usage") or {}
            report.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
            report.finished = True
        elif kind == "turn.failed":
            report.error = clip((line.get("error") or {}).get("message") or "turn failed", 500)
            report.finished = True
        elif kind == "error":
            report.error = clip(line.get("message") or "error", 500)
        return out

    def finish(self, report: StreamReport) -> None:
        report.model = report.model or self.default_model
        super().finish(report)
