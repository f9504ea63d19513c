"""Coding agents on a task, each in its own git worktree through the PTY runner (:mod:`..agents`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, cast

from ...servers.core.errors import LLMMixerError
from .. import costcap, history
from ..requests import AgentRequest
from ..results import AgentResult
from .base import INTERRUPTED, Emit, RunKind, register

if TYPE_CHECKING:
    from ...servers.core.events import EventType
    from ..agents import AgentRun
    from ..pool import Admission
    from ..runs import Runs, RunState
    from ..statuses import RunStatus

__all__ = ["Agents"]


@register(AgentRequest)
class Agents(RunKind):
    """Start coding agents on a task; checked before anything starts (``agents.plan_agents``)."""

    name = "agent"

    def __init__(self, runs: Runs, request: AgentRequest) -> None:
        self.runs, self.request = runs, request
        self.mode = "all" if request.continue_run else request.mode  # continued legs each run to their end
        self.title = {"task": request.task[:200]}
        self.places = ["pty"] * max(1, len(request.agents))  # each leg holds one runner call
        self.error: LLMMixerError | None = None

    @classmethod
    async def prepare(cls, runs: Runs, request: AgentRequest) -> Self:
        """Raises:
            BudgetError: the daily budget is used up.
        """
        if runs.config.settings.budget is not None:  # nothing to estimate before agents start (costcap.py)
            costcap.check_budget(runs.config.settings.budget, await runs.spent_today())
        return cls(runs, request)

    def open(self, state: RunState) -> dict[str, Any]:
        """Raises:
            InvalidInputError, NotFoundError: see ``agents.plan_agents``.
        """
        from ..agents import agent_specs, plan_agents

        self.state = state
        runs, request = self.runs, self.request
        self.plan: AgentRun = plan_agents(request, agent_specs(runs.config.agents), state.run_id,
                                          gateway=runs.gateway, limits=runs.config.settings.agent_limits)
        request = self.plan.request  # a continuation's: its kept legs, in mode all
        options = {"agents": request.agents, "check": request.check,
                   **({"continue_run": request.continue_run} if request.continue_run else {})}
        return history.new_record(state.run_id, "agent", prompt=request.task, mode=request.mode, options=options)

    async def run(self, emit: Emit, admission: Admission) -> None:
        from ..agents import run_agents

        request = self.plan.request
        emit("run.started", "orchestrator", {"kind": "agent", "mode": request.mode, "agents": request.agents,
                                             "check": request.check, "task": request.task[:200]})

        def emit_any(type_: str, source: str, data: dict[str, Any]) -> None:  # agents emit their own types
            emit(cast("EventType", type_), source, data)  # Event checks the type at run time

        try:
            await run_agents(self.plan, self.runs.pool, emit_any, admission)
        except LLMMixerError as error:
            self.error = error

    def result(self) -> tuple[RunStatus, AgentResult]:
        plan, state = self.plan, self.state
        if self.error is not None:
            return "error", AgentResult.model_validate({**plan.to_dict(), "error": self.error.to_dict()["error"]})
        if state.interrupted:
            return "interrupted", AgentResult.model_validate({**plan.to_dict(), "message": INTERRUPTED})
        status: RunStatus = "cancelled" if state.cancel_requested else ("done" if plan.ok else "error")
        if plan.spend is not None and plan.spend.stopped and not state.cancel_requested:
            status = "done" if plan.ok else "cancelled"  # stopped by its cost cap, as an ask is
        return status, AgentResult.model_validate(plan.to_dict())
