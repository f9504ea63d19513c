"""A shell command: one ``run`` call on the PTY runner, its output streamed as ``pty.output``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from ...servers.core.errors import CancelledError_, LLMMixerError, ServerError
from ...servers.core.redact import redact_inline
from ...servers.core.results import result_payload
from .. import history
from ..requests import CommandRequest
from ..results import CommandResult
from .base import INTERRUPTED, Emit, RunKind, register

if TYPE_CHECKING:
    from ..pool import Admission
    from ..runs import Runs, RunState
    from ..statuses import RunStatus

__all__ = ["Command"]


@register(CommandRequest)
class Command(RunKind):
    name = "command"

    def __init__(self, runs: Runs, request: CommandRequest) -> None:
        self.runs = runs
        self.arguments: dict[str, Any] = request.model_dump(exclude_none=True)
        self.shown = redact_inline(request.command)  # FOO=sk-... cmd: the key never shows, nor is it kept
        self.title = {"command": self.shown[:200]}
        self.places = ["pty"]  # also checks that a pty server is configured
        self.final: dict[str, Any] | None = None  # the runner's result, or {"error": ...}

    @classmethod
    async def prepare(cls, runs: Runs, request: CommandRequest) -> Self:
        return cls(runs, request)

    def open(self, state: RunState) -> dict[str, Any]:
        self.state = state
        return history.new_record(state.run_id, "command", command=self.shown,
                                  options={k: v for k, v in self.arguments.items() if k != "command"})

    async def run(self, emit: Emit, admission: Admission) -> None:
        emit("run.started", "orchestrator", {"kind": "command", "command": redact_inline(self.arguments["command"])})

        async def progress(_p: float, _t: float | None, message: str | None) -> None:
            if message:
                emit("pty.output", "pty", {"text": message})

        try:
            result = await self.runs.pool.call("pty", "run", self.arguments, progress, admission=admission,
                                               on_state=self.state.set_command_state)
        except LLMMixerError as error:
            self.final = {"error": error.to_dict()["error"]}
        else:
            payload = result_payload(result)
            wire = payload.get("error")
            self.final = payload if not result.is_error else {"error": wire if isinstance(wire, dict) else ServerError(
                "the PTY runner failed without a classified error").to_dict()["error"]}
        emit("pty.exit", "pty", self.final)

    def result(self) -> tuple[RunStatus, CommandResult]:
        final, state = self.final, self.state
        if final is None and state.interrupted:
            output = "".join(text for _, text in state.deltas)
            return "interrupted", CommandResult(output=output, message=INTERRUPTED,
                                                error=CancelledError_(INTERRUPTED).to_dict()["error"])
        if final is None:
            return "cancelled", CommandResult(error=CancelledError_("cancelled").to_dict()["error"])
        return "error" if "error" in final else "done", CommandResult.model_validate(final)
