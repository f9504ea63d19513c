"""One agent leg: its CLI run through the PTY runner (over MCP, so the runner's sandbox and policy apply), its
stream turned into run events, then ``--check`` run in its worktree.

The runner's ``run`` tool streams the terminal output as progress notifications. Each complete line that is JSON
goes to the CLI's adapter, which turns it into ``agent.*`` events; the raw text also goes out as ``agent.output``
(the dashboard's terminal pane). Every text leaving the leg is redacted of the leg's secrets first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ...servers.core.errors import AuthError, LLMMixerError
from ...servers.core.results import result_payload
from ..pool import Admission, ServerPool
from .base import AgentCLI, StreamReport
from .launch import LegLayout, Redactor
from .resume import Continuation
from .spec import AgentSpec
from .worktree import readable

__all__ = ["AgentLeg", "run_cli", "run_check", "run_in_worktree", "Emit", "TAIL_CHARS"]

Emit = Callable[[str, str, dict[str, Any]], None]  # (type, source, data)
TAIL_CHARS = 4000
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass
class AgentLeg:
    spec: AgentSpec
    adapter: AgentCLI
    layout: LegLayout
    status: str = "pending"  # pending | running | won | done | failed | cancelled | error
    report: StreamReport = field(default_factory=StreamReport)
    exit_code: int | None = None
    timed_out: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    check: dict[str, Any] | None = None
    diff: str | None = None
    kept: dict[str, Any] | None = None  # its commit and stat, and the branch when kept (candidates.py)
    setup: dict[str, Any] | None = None  # the --setup command's outcome (bootstrap.py)
    included: list[str] = field(default_factory=list)  # files .worktreeinclude brought into its worktree
    error: dict[str, Any] | None = None
    files_changed: list[str] = field(default_factory=list)
    stop_requested_at: float | None = None
    stopped_ms: float | None = None  # cancelled legs: from the decision to the last process gone
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    admission: Admission | None = None  # the run's places in the runner's queue: each leg gives back one (pool.py)
    resume: Continuation | None = None  # a kept leg continued: the session it resumes (resume.py)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def passed(self) -> bool:
        """Its check passed; a continued leg given no check: its CLI ran to a successful end."""
        if self.check is None and self.resume is not None:
            return self.exit_code == 0 and not self.timed_out and self.report.finished and not self.report.error
        return bool(self.check and self.check.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        duration = None
        if self.started_at is not None:
            duration = round(((self.ended_at or time.monotonic()) - self.started_at) * 1000, 1)
        report = self.report
        return {"agent": self.name, "cli": self.spec.cli, "status": self.status, "duration_ms": duration,
                "exit_code": self.exit_code, "timed_out": self.timed_out, "model": report.model,
                "usage": report.usage or None, "cost_usd": report.cost_usd, "text": report.text,
                "check": self.check, "files_changed": self.files_changed, "error": self.error,
                "stopped_ms": self.stopped_ms, "diff": readable(self.diff), "kept": self.kept, "setup": self.setup,
                "included": self.included}


class _Lines:
    """Splits streamed terminal text into lines; keeps the tail of the output for the result."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, text: str) -> list[str]:
        text = self._partial + text
        *lines, self._partial = re.split(r"\r?\n", text)
        return lines

    def rest(self) -> list[str]:
        rest, self._partial = self._partial, ""
        return [rest] if rest else []


def _handle_line(leg: AgentLeg, raw: str, emit: Emit, redact: Redactor) -> None:
    line = _ANSI.sub("", raw).strip().lstrip("\x00")
    if not line.startswith("{"):
        return
    try:
        parsed = json.loads(line)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    for type_, data in leg.adapter.read(parsed, leg.report):
        data = json.loads(redact(json.dumps(data, ensure_ascii=False)))
        if type_ == "agent.file_changed" and data.get("path") and data["path"] not in leg.files_changed:
            leg.files_changed.append(data["path"])
        emit(type_, leg.name, data)


def _error_of(payload: dict[str, Any]) -> dict[str, Any]:
    error = payload.get("error")
    return error if isinstance(error, dict) else {"kind": "server", "message": "the PTY runner failed"}


async def run_cli(leg: AgentLeg, pool: ServerPool, command: str, timeout_s: float, emit: Emit, redact: Redactor,
                  *, env: dict[str, str], secrets: dict[str, str], writable: list[str],
                  on_report: Callable[[], None] | None = None) -> None:
    """Run the CLI to its end (or ``timeout_s``) through the runner; fills ``leg``'s report, exit code, output.
    ``on_report`` is called after each line of the CLI's stream is read into the report, and once at its end."""
    lines = _Lines()

    async def progress(_p: float, _t: float | None, message: str | None) -> None:
        if not message:
            return
        text = redact(message)
        emit("agent.output", leg.name, {"text": text})
        for raw in lines.feed(text):
            _handle_line(leg, raw, emit, redact)
            if on_report is not None:
                on_report()

    result = await pool.call("pty", "run", {"command": command, "cwd": str(leg.layout.root), "timeout_s": timeout_s,
                                            "env": env, "secrets": secrets, "writable": writable}, progress,
                             admission=leg.admission)
    for raw in lines.rest():
        _handle_line(leg, raw, emit, redact)
    payload = result_payload(result)  # an error travels as text: its JSON says what the runner refused
    if result.is_error:
        raise _classified(_error_of(payload))
    leg.exit_code = payload.get("exit_code")
    leg.timed_out = bool(payload.get("timed_out"))
    leg.adapter.finish(leg.report)
    if on_report is not None:
        on_report()


async def run_check(leg: AgentLeg, pool: ServerPool, check: str, timeout_s: float, emit: Emit,
                    redact: Redactor) -> dict[str, Any]:
    """``check`` in the leg's worktree, through the runner: its exit code and the tail of its output."""
    emit("agent.check", leg.name, {"phase": "started", "command": check})
    outcome = await run_in_worktree(leg, pool, check, timeout_s, redact)
    emit("agent.check", leg.name, {"phase": "done", **outcome})
    return outcome


async def run_in_worktree(leg: AgentLeg, pool: ServerPool, command: str, timeout_s: float,
                          redact: Redactor) -> dict[str, Any]:
    """``command`` in the leg's worktree, through the runner (so in its sandbox): ``{"command", "exit_code",
    "passed", "timed_out", "output_tail", "duration_ms"}``, or with ``error`` when the runner refused or failed."""
    started = time.monotonic()
    result = await pool.call("pty", "run", {"command": command, "cwd": str(leg.layout.work), "timeout_s": timeout_s},
                             admission=leg.admission)
    payload = result_payload(result)  # an error travels as text: its JSON says what the runner refused
    if result.is_error:
        return {"command": command, "exit_code": None, "passed": False, "output_tail": "",
                "duration_ms": round((time.monotonic() - started) * 1000, 1), "error": _error_of(payload)}
    code = payload.get("exit_code")
    return {"command": command, "exit_code": code, "passed": code == 0 and not payload.get("timed_out"),
            "timed_out": bool(payload.get("timed_out")),
            "output_tail": _ANSI.sub("", redact(str(payload.get("output", ""))))[-TAIL_CHARS:],
            "duration_ms": round((time.monotonic() - started) * 1000, 1)}


def _classified(error: dict[str, Any]) -> LLMMixerError:
    from ...servers.core.errors import error_from_dict

    return error_from_dict({"error": error})


def missing_key(adapter: AgentCLI) -> AuthError:
    names = " or ".join(adapter.key_vars)
    return AuthError(f"{adapter.name} needs an API key: set {names}", vendor=adapter.name)
