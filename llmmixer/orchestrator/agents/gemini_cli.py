"""Gemini CLI (``@google/gemini-cli``): ``gemini -p --output-format stream-json``.

- Endpoint: ``GOOGLE_GEMINI_BASE_URL``; key: ``GEMINI_API_KEY``. HOME gets ``.gemini/settings.json`` selecting the
  ``gemini-api-key`` auth type (otherwise the CLI asks how to sign in) with usage statistics and telemetry off.
- Approvals: ``--yolo``; ``--skip-trust`` so the folder-trust question never comes up.
- Its router first asks a small model to rate the task's complexity, with a response schema in Gemini's own
  upper-case dialect (``OBJECT``, ``STRING``); the emulators answer it.
- Resume: ``--resume SESSION`` (the ``session_id`` of ``init``), its transcript under HOME's
  ``.gemini/tmp/<project>/chats/``.
- Stream: ``init`` (model), ``message`` (``role: assistant`` deltas), ``tool_use`` / ``tool_result``, ``error``, and
  one ``result`` with ``stats`` (tokens, no cost: priced from our table per model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...servers.core import pricing
from .base import AgentCLI, AgentEventData, StreamReport, clip, small

__all__ = ["GeminiCLI"]

_FILE_TOOLS = ("write_file", "replace", "edit")


class GeminiCLI(AgentCLI):
    name = "gemini-cli"
    binary = "gemini"
    npm_package = "@google/gemini-cli"
    key_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_url_var = "GOOGLE_GEMINI_BASE_URL"

    def __init__(self) -> None:
        self._per_model: dict[str, dict[str, int]] = {}
        self._reply: list[str] = []

    def home_files(self, home: Path, *, base_url: str | None, model: str | None) -> dict[str, str]:
        settings: dict[str, Any] = {
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
            "ui": {"hideTips": True, "hideBanner": True},
        }
        if model:
            settings["model"] = {"name": model}
        return {".gemini/settings.json": json.dumps(settings, indent=2)}

    def environment(self, home: Path, *, base_url: str | None) -> dict[str, str]:
        env = {"GEMINI_CLI_NO_RELAUNCH": "true", "NO_BROWSER": "true"}
        if base_url:
            env[self.base_url_var] = base_url
        return env

    def argv(self, task: str, *, model: str | None, extra: list[str], resume: str | None = None) -> list[str]:
        args = ["-p", task, "--output-format", "stream-json", "--yolo", "--skip-trust"]
        if resume:
            args += ["--resume", resume]
        if model:
            args += ["--model", model]
        return args + extra

    def read(self, line: dict[str, Any], report: StreamReport) -> list[AgentEventData]:
        kind = line.get("type")
        out: list[AgentEventData] = []
        if kind == "init":
            report.model = line.get("model") or report.model
            report.session_id = line.get("session_id")
        elif kind == "message" and line.get("role") == "assistant" and line.get("content"):
            if not line.get("delta"):
                self._reply = []
            self._reply.append(line["content"])
            report.text = "".join(self._reply)
            out.append(("agent.text", {"text": line["content"], "delta": bool(line.get("delta"))}))
        elif kind == "message" and line.get("role") == "user":
            self._reply = []
        elif kind == "tool_use":
            tool, arguments = str(line.get("tool_name")), line.get("parameters") or {}
            self._reply = []
            out.append(("agent.tool_call", {"tool": tool, "id": line.get("tool_id"), "input": small(arguments)}))
            if tool == "run_shell_command" and "command" in arguments:
                out.append(("agent.command", {"command": clip(arguments["command"])}))
            if tool in _FILE_TOOLS and arguments.get("file_path"):
                out.append(("agent.file_changed", {"path": arguments["file_path"], "tool": tool}))
        elif kind == "tool_result":
            out.append(("agent.tool_result", {"id": line.get("tool_id"), "output": clip(line.get("output", "")),
                                              "is_error": line.get("status") != "success"}))
        elif kind == "error":
            report.error = clip(line.get("message") or "error", 500)
        elif kind == "result":
            report.finished = True
            stats = line.get("stats") or {}
            report.add_usage(stats.get("input_tokens"), stats.get("output_tokens"))
            models = stats.get("models")
            self._per_model = {name: value for name, value in models.items() if isinstance(value, dict)} \
                if isinstance(models, dict) else {}
            if line.get("status") not in (None, "success"):
                report.error = clip((line.get("error") or {}).get("message") or line.get("status"), 500)
        return out

    def finish(self, report: StreamReport) -> None:
        # Gemini CLI routes between models; each one's tokens are priced at its own price.
        costs = [pricing.cost_usd(name, usage.get("input_tokens"), usage.get("output_tokens"))
                 for name, usage in self._per_model.items()]
        if costs and all(cost is not None for cost in costs):
            report.cost_usd = round(sum(c for c in costs if c is not None), 10)
        else:
            super().finish(report)
