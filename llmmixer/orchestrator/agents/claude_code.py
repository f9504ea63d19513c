"""Claude Code (``@anthropic-ai/claude-code``): ``claude -p --output-format stream-json --verbose``.

- Endpoint: ``ANTHROPIC_BASE_URL``; key: ``ANTHROPIC_API_KEY``. ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` turns
  off telemetry, error reporting and feedback surveys; started interactively it still checks for releases
  (``downloads.claude.ai``) and installs the official plugin marketplace (``github.com``) unless ``DISABLE_UPDATES``,
  ``DISABLE_INSTALLATION_CHECKS`` and ``CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL`` say no.
- Approvals: ``--dangerously-skip-permissions``, which Claude Code refuses as root unless ``IS_SANDBOX=1`` says it
  runs in a sandbox (it does: the runner's).
- HOME: ``.claude.json`` marks onboarding as done and the API key as approved, so no first-run screen asks.
- Resume: ``--resume SESSION`` (the ``session_id`` of ``system/init``), its transcript under HOME's
  ``.claude/projects/<the worktree's path>/``.
- Stream: ``system/init`` (model), ``assistant`` messages (text and ``tool_use`` blocks), ``user`` messages
  (``tool_result`` blocks), and one ``result`` line with ``usage`` and ``total_cost_usd``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import AgentCLI, AgentEventData, StreamReport, clip, small

__all__ = ["ClaudeCode"]

_FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")


class ClaudeCode(AgentCLI):
    name = "claude-code"
    binary = "claude"
    npm_package = "@anthropic-ai/claude-code"
    key_vars = ("ANTHROPIC_API_KEY",)
    base_url_var = "ANTHROPIC_BASE_URL"

    def home_files(self, home: Path, *, base_url: str | None, model: str | None) -> dict[str, str]:
        state = {"hasCompletedOnboarding": True, "bypassPermissionsModeAccepted": True, "numStartups": 1,
                 "autoUpdates": False, "hasTrustDialogAccepted": True}
        settings = {"env": {"DISABLE_AUTOUPDATER": "1"}, "includeCoAuthoredBy": False}
        return {".claude.json": json.dumps(state), ".claude/settings.json": json.dumps(settings)}

    def environment(self, home: Path, *, base_url: str | None) -> dict[str, str]:
        env = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_UPDATES": "1",
               "DISABLE_INSTALLATION_CHECKS": "1", "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
               "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_GROWTHBOOK": "1",
               "IS_SANDBOX": "1"}
        if base_url:
            env[self.base_url_var] = base_url
        return env

    def argv(self, task: str, *, model: str | None, extra: list[str], resume: str | None = None) -> list[str]:
        args = ["-p", task, "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
        if resume:
            args += ["--resume", resume]
        if model:
            args += ["--model", model]
        return args + extra

    def read(self, line: dict[str, Any], report: StreamReport) -> list[AgentEventData]:
        kind = line.get("type")
        out: list[AgentEventData] = []
        if kind == "system" and line.get("subtype") == "init":
            report.model = line.get("model") or report.model
            report.session_id = line.get("session_id")
        elif kind == "assistant":
            message = line.get("message") or {}
            report.model = message.get("model") or report.model
            for block in message.get("content") or []:
                if block.get("type") == "text" and block.get("text"):
                    report.text = block["text"]
                    out.append(("agent.text", {"text": block["text"]}))
                elif block.get("type") == "tool_use":
                    tool, arguments = str(block.get("name")), block.get("input") or {}
                    out.append(("agent.tool_call", {"tool": tool, "id": block.get("id"),
                                                    "input": small(arguments)}))
                    if tool == "Bash" and "command" in arguments:
                        out.append(("agent.command", {"command": clip(arguments["command"])}))
                    if tool in _FILE_TOOLS and arguments.get("file_path"):
                        out.append(("agent.file_changed", {"path": arguments["file_path"], "tool": tool}))
        elif kind == "user":
            for block in (line.get("message") or {}).get("content") or []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.append(("agent.tool_result", {"id": block.get("tool_use_id"),
                                                      "output": clip(block.get("content", "")),
                                                      "is_error": bool(block.get("is_error"))}))
        elif kind == "result":
            report.finished = True
            usage = line.get("usage") or {}
            report.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
            if isinstance(line.get("total_cost_usd"), (int, float)):
                report.cost_usd, report.cost_reported = float(line["total_cost_usd"]), True
            if isinstance(line.get("result"), str):
                report.text = line["result"]
            if line.get("is_error") or line.get("subtype") not in (None, "success"):
                report.error = clip(line.get("result") or line.get("subtype") or "error", 500)
        return out
