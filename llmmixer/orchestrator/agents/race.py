"""``llmmixer agent``: several coding agents on one task, each in its own worktree; ``--check`` decides who won.

- ``race``: every agent starts; when one finishes, ``--check`` runs in its worktree; the first whose check passes
  wins and every other leg is stopped at once (its ``run`` call is cancelled, which makes the runner kill the whole
  sandbox; then any process still carrying the leg's marker is killed, TERM then KILL) and its worktree removed.
- ``all``: every agent runs to its end and every check runs; the first to pass is the winner.

The result holds the winner's ``git diff``, and for every leg its status, duration, usage and cost (from the CLI's
own JSON), check exit code and output tail. ``apply`` applies the winner's diff to the user's tree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ...servers.core.errors import InvalidInputError, LLMMixerError
from ..config import AgentLimits
from ..costcap import SpendMeter
from ..modes import AGENT_MODES
from ..pool import Admission, ServerPool
from ..requests import AgentRequest, default_agents as _default_agents
from .launch import (LegLayout, Redactor, agents_dir, endpoint_for, ignore_agents_dir, leg_environment, prepare_home,
                     secrets_for, shell_command)
from .leg import AgentLeg, Emit, missing_key, run_check, run_cli
from .limits import ulimit_prefix, within_limits
from .processes import stop_leg_processes
from .spec import AgentSpec, find_command
from .bootstrap import bring_included, run_setup
from .resume import Continuation, plan_continuation
from .sessions import restore_home, save_session
from .candidates import forget_leg, keep_leg, leg_diff
from .pick import judge_candidates
from .worktree import (Repo, Worktree, add_worktree, apply_diff, head_commit, readable, remove_worktree,
                       repo_root, snapshot_commit)

__all__ = ["AGENT_MODES", "AgentRequest", "AgentRun", "run_agents", "plan_agents", "DEFAULT_CHECK_TIMEOUT_S"]

DEFAULT_CHECK_TIMEOUT_S = 300.0


@dataclass
class AgentRun:
    request: AgentRequest
    repo: Repo
    legs: list[AgentLeg]
    run_dir: Path
    winner: AgentLeg | None = None
    verdict: dict[str, Any] | None = None  # --pick best: the judge's (pick.py)
    applied: bool = False
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    gateway_token: str | None = None  # the CLIs' API key when they use the gateway (AgentRequest.model)
    base: str | None = None  # the commit every leg starts from: HEAD, or a snapshot of the user's tree (--base)
    spend: SpendMeter | None = None  # max_cost_usd: the legs' spend against the cap (costcap.py)
    limits: AgentLimits = field(default_factory=AgentLimits)  # settings.agent_limits, for each leg (limits.py)

    @property
    def ok(self) -> bool:
        return self.winner is not None

    @property
    def run_id(self) -> str:
        """The run whose branches the legs are kept on: this one, or the one it continues."""
        return self.run_dir.name

    def to_dict(self) -> dict[str, Any]:
        request = self.request
        costs = [leg.report.cost_usd for leg in self.legs if leg.report.cost_usd is not None]
        return {"mode": self.request.mode, "task": self.request.task, "check": self.request.check,
                "repo": str(self.repo), "winner": self.winner.name if self.winner else None,
                "diff": readable(self.winner.diff) if self.winner else None, "applied": self.applied,
                "kept": request.keeps, "pick": request.pick, "verdict": self.verdict, "base": request.base,
                "continued": request.continue_run,
                "cost_cap": self.spend.to_dict() if self.spend else None,
                "legs": [leg.to_dict() for leg in self.legs],
                "total_cost_usd": round(sum(costs), 10) if costs else None,
                "duration_ms": round(((self.ended_at or time.monotonic()) - self.started_at) * 1000, 1)}


def plan_agents(request: AgentRequest, specs: dict[str, AgentSpec], run_id: str, *,
                gateway: tuple[str, str] | None = None, limits: AgentLimits | None = None) -> AgentRun:
    """Check the request before anything starts.

    ``continue_run``: the legs are that run's kept ones, resumed (resume.py); the check may then be empty.

    Raises:
        InvalidInputError: empty task or check, unknown mode or agent, not in a git repository.
        ConflictError: a leg to continue is running now.
        NotFoundError: an agent's CLI is not installed (the message names its npm package); no kept leg or
            session to continue.
    """
    if not request.task.strip():
        raise InvalidInputError("the task is empty: say what the agents should do")
    if not request.check.strip() and request.continue_run is None:
        raise InvalidInputError("--check is empty: give the command that decides whether an agent succeeded")
    if request.mode not in AGENT_MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(AGENT_MODES)}; got {request.mode!r}")
    if not request.agents:
        raise InvalidInputError(f"no agents: choose from {', '.join(specs)}")
    repo = repo_root(request.cwd or ".")
    continuing: dict[str, Continuation] = {}
    if request.continue_run is not None:  # every continued leg runs to its end, and is kept on its own branch
        continuing = plan_continuation(repo, request.continue_run, request.agents, specs,
                                       request.agents == _default_agents(), agents_dir() / request.continue_run)
        request = request.model_copy(update={"agents": list(continuing), "mode": "all", "keep": True,
                                             "pick": "first", "base": "head"})
    unknown = [name for name in request.agents if name not in specs]
    if unknown:
        raise InvalidInputError(f"unknown agent(s) {', '.join(unknown)}; configured: {', '.join(specs)}")
    if len(set(request.agents)) != len(request.agents):
        raise InvalidInputError("an agent is named twice in --agents")
    if request.timeout_s is not None and not request.timeout_s > 0:
        raise InvalidInputError("--timeout must be a positive number of seconds")
    for name in request.agents:
        find_command(specs[name])
    run_dir = agents_dir() / (request.continue_run or run_id)  # a continued leg works where it worked before
    token = None
    if request.model is not None:
        if gateway is None:
            raise InvalidInputError("model: a gateway model needs the gateway; run the agents through llmmixer serve")
        url, token = gateway
        specs = {name: _on_gateway(specs[name], url, request.model) for name in request.agents}
    legs = [AgentLeg(spec=specs[name], adapter=specs[name].adapter(),
                     layout=LegLayout(root=run_dir / name, leg_id=f"{run_id}-{name}-{uuid.uuid4().hex[:6]}"),
                     resume=continuing.get(name))
            for name in request.agents]
    spend = SpendMeter(request.max_cost_usd, 0) if request.max_cost_usd is not None else None
    return AgentRun(request=request, repo=repo, legs=legs, run_dir=run_dir, gateway_token=token, spend=spend,
                    limits=limits or AgentLimits())


def _on_gateway(spec: AgentSpec, url: str, model: str) -> AgentSpec:
    """``spec`` with the gateway ``model``, its endpoint the gateway at ``url`` (in the CLI's own dialect)."""
    adapter = spec.adapter()
    return dataclasses.replace(spec, model=model, env={**spec.env, adapter.base_url_var: url + adapter.gateway_path})


async def run_agents(run: AgentRun, pool: ServerPool, emit: Emit, admission: Admission | None = None) -> AgentRun:
    """Run every leg as the mode says; the run's winner, legs and (with ``apply``) the applied diff. ``admission``
    holds the run's places in the runner's queue, one per leg (pool.py)."""
    request = run.request
    for leg in run.legs:
        leg.admission = admission
    decided = anyio.Event()
    passers: list[AgentLeg] = []  # --pick best: the legs that passed, in the order they passed
    grace = anyio.CancelScope()

    def stop_running(leg: AgentLeg | None, why: dict[str, Any] | None = None) -> None:
        decided_at = time.monotonic()
        for other in run.legs:
            if other is not leg and other.status == "running":
                other.status = "cancelled"
                other.stop_requested_at = decided_at
                other.error = why
                other.scope.cancel()

    def metered(leg: AgentLeg) -> None:
        """max_cost_usd: the moment the legs' spend crosses it, every leg still running is stopped (this one too,
        unless its CLI has already reported its last turn: its spend is final then, and its check may still win)."""
        if run.spend is not None and run.spend.record(leg.name, leg.report.spent_usd):
            stop_running(leg if leg.report.finished else None, run.spend.stop_error().to_dict()["error"])

    async def then_stop() -> None:
        """--pick best in a race: after the first pass, the others have --grace seconds to pass too."""
        with grace:
            await anyio.sleep(request.grace_s)
            stop_running(None)

    async def one(leg: AgentLeg) -> None:
        spec, adapter = leg.spec, leg.adapter
        tree: Worktree | None = None
        # On the gateway the CLI's API key is the service token; otherwise the vendor key from the environment.
        secrets = {adapter.key_vars[0]: run.gateway_token} if run.gateway_token else secrets_for(adapter)
        redact = Redactor(secrets)
        leg.started_at = time.monotonic()
        leg.status = "running"
        resume = leg.resume
        emit("leg.started", leg.name, {"agent": leg.name, "cli": spec.cli, "model": spec.model,
                                       **({"continues": resume.session.session_id} if resume else {})})
        try:
            with leg.scope:
                if not secrets:
                    raise missing_key(adapter)
                binary = find_command(spec)
                tree = await add_worktree(run.repo, leg.layout.work, resume.tip if resume else run.base)
                leg.included = await bring_included(run.repo, tree.work)
                if request.setup:
                    await run_setup(leg, pool, request.setup, DEFAULT_CHECK_TIMEOUT_S, emit, redact)
                base_url = endpoint_for(adapter, spec)
                if resume:
                    await anyio.to_thread.run_sync(restore_home, resume.session, leg.layout.home)
                prepare_home(adapter, spec, leg.layout, base_url=base_url)
                command = shell_command(adapter, spec, leg.layout, binary=binary, task=request.task,
                                        resume=resume.session.session_id if resume else None)
                env = leg_environment(adapter, spec, leg.layout, base_url=base_url, binary=binary)
                # The worktree's git admin dir (index, HEAD) so the agent's own git commands work; nothing else.
                writable = [str(tree.admin)]
                command = ulimit_prefix(run.limits) + command

                async def agent_run() -> None:
                    await run_cli(leg, pool, command, request.timeout_s or spec.timeout_s, emit, redact, env=env,
                                  secrets=secrets, writable=writable, on_report=lambda: metered(leg))

                await within_limits(run.limits, leg.layout.leg_id, leg.name, agent_run)
                emit("agent.exit", leg.name, {"exit_code": leg.exit_code, "timed_out": leg.timed_out,
                                              "error": leg.report.error})
                if request.check:  # a continuation may go without: then the CLI's own success decides
                    leg.check = await run_check(leg, pool, request.check, DEFAULT_CHECK_TIMEOUT_S, emit, redact)
                await _keep(run, leg, tree)
                if leg.passed and request.pick == "best":
                    leg.status = "done"
                    passers.append(leg)
                    if request.mode == "race" and len(passers) == 1:
                        tg.start_soon(then_stop)
                elif leg.passed and run.winner is None:
                    run.winner = leg
                    leg.status = "won"
                    emit("race.won", leg.name, {"agent": leg.name, "mode": request.mode})
                    if request.mode == "race":
                        stop_running(leg)
                        decided.set()
                else:
                    leg.status = "done" if leg.passed else "failed"
            if leg.scope.cancelled_caught or leg.status == "cancelled":
                leg.status = "cancelled"
        except LLMMixerError as error:
            leg.status = "error"
            leg.error = error.to_dict()["error"]
            emit("leg.error", leg.name, {"agent": leg.name, "error": leg.error})
        finally:
            with anyio.CancelScope(shield=True):
                await stop_leg_processes(leg.layout.leg_id)
                if leg.status == "cancelled" and leg.stop_requested_at is not None:
                    leg.stopped_ms = round((time.monotonic() - leg.stop_requested_at) * 1000, 1)
                leg.ended_at = time.monotonic()
                if tree is not None:
                    await remove_worktree(tree)
                _remove_tree(leg.layout.root)
        if leg.status == "cancelled":
            emit("leg.cancelled", leg.name, {"agent": leg.name, "stopped_ms": leg.stopped_ms})
        elif leg.status != "error":
            emit("leg.done", leg.name, {k: v for k, v in leg.to_dict().items() if k != "diff"})
        if all(other.ended_at is not None for other in run.legs):
            grace.cancel()  # nobody left to wait for

    try:
        await anyio.to_thread.run_sync(ignore_agents_dir, run.run_dir.parent)
        snapshot = snapshot_commit if request.base == "worktree" else head_commit
        run.base = await anyio.to_thread.run_sync(snapshot, run.repo)
        async with anyio.create_task_group() as tg:
            for leg in run.legs:
                tg.start_soon(one, leg)
    finally:
        run.ended_at = time.monotonic()
        if request.continue_run is None:
            _remove_tree(run.run_dir)
        else:  # other legs of that run may be being continued meanwhile
            with contextlib.suppress(OSError):
                run.run_dir.rmdir()
    if passers:
        await _pick(run, pool, passers, emit)
    if request.apply and run.winner is not None and run.winner.diff:
        await apply_diff(run.repo, run.winner.diff)
        run.applied = True
    return run


async def _pick(run: AgentRun, pool: ServerPool, passers: list[AgentLeg], emit: Emit) -> None:
    """--pick best: one passer wins as it is; several go to the judge (pick.py)."""
    winner, run.verdict = passers[0], None
    if len(passers) > 1:
        judge = run.request.judge or (pool.config.model_sources or [""])[0]
        emit("agent.check", "judge", {"phase": "judging", "candidates": [leg.name for leg in passers],
                                      "judge": judge})
        winner, run.verdict = await judge_candidates(pool, judge, run.request.task, run.request.check, passers)
    run.winner = winner
    winner.status = "won"
    emit("race.won", winner.name, {"agent": winner.name, "mode": run.request.mode, "pick": "best",
                                   "verdict": run.verdict})


async def _keep(run: AgentRun, leg: AgentLeg, tree: Worktree) -> None:
    """Every leg that reached its check ends with its diff and stat, passed or not; kept as a branch on request,
    with its CLI's session (so it can be continued)."""
    verdict = "passed" if leg.passed else "failed"
    resume = leg.resume
    what = f"follow-up, {'check ' + verdict if leg.check else 'no check'}" if resume else f"check {verdict}"
    with anyio.CancelScope(shield=True):  # a race decided meanwhile must not lose the winner's commit half-made
        kept = await keep_leg(tree, run.run_id, leg.name, f"llmmixer agent {leg.name}: {what}\n\n"
                                                          f"{'follow-up' if resume else 'task'}: "
                                                          f"{run.request.task[:2000]}",
                              origin=resume.origin if resume else None)
        if run.request.keeps:
            await stop_leg_processes(leg.layout.leg_id)  # nothing of the leg's may change its HOME while it is copied
            session_id = leg.report.session_id or (resume.session.session_id if resume else None)
            await anyio.to_thread.run_sync(lambda: save_session(leg.layout.home, run.run_id, leg.name, leg.spec.cli,
                                                                session_id))

        def diff_then_forget() -> str:
            diff = leg_diff(run.repo, run.run_id, leg.name)
            if not run.request.keeps:
                forget_leg(run.repo, run.run_id, leg.name)  # the commit stays unreferenced; git's gc drops it
            return diff

        leg.diff = await anyio.to_thread.run_sync(diff_then_forget)
    leg.kept = {**kept.to_dict(), "branch": kept.branch if run.request.keeps else None}
    for path in kept.files:
        if path not in leg.files_changed:
            leg.files_changed.append(path)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
