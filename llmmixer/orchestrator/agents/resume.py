"""Continuing kept legs: ``llmmixer agent continue RUN AGENT "follow-up"`` (``continue_run`` on the request).

A continued leg gets a fresh worktree of its branch ``llmmixer/<run>/<agent>`` and a fresh sandbox, at the same
path its first worktree had (each CLI files its sessions under the directory it ran in), a HOME holding the kept
session (sessions.py), and its CLI resumes that session with the follow-up as the next message. Its check, when one
is given, runs as in a race; the result is committed onto the same branch, so ``agent show`` and ``agent apply``
see the leg's whole work, first run and follow-ups together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...servers.core.errors import ConflictError, InvalidInputError
from .candidates import kept_branches, leg_base
from .sessions import Session, load_session
from .spec import AgentSpec
from .worktree import Repo

__all__ = ["Continuation", "plan_continuation"]


@dataclass(frozen=True)
class Continuation:
    """What a continued leg resumes: its kept session, its branch's commit, the commit the leg first started from."""

    session: Session
    tip: str
    origin: str


def plan_continuation(repo: Repo, run_id: str, agents: list[str], specs: dict[str, AgentSpec],
                      default_agents: bool, run_dir: Path) -> dict[str, Continuation]:
    """The legs of ``run_id`` to continue, by agent: ``agents``, or (``default_agents``) every leg the run kept.

    Raises:
        NotFoundError: no kept leg or no kept session for an agent.
        InvalidInputError: the run kept no legs; an agent is no longer configured, or runs another CLI now.
        ConflictError: the leg is being continued (or its run is still going) right now.
    """
    kept = {leg["agent"]: leg["commit"] for leg in kept_branches(repo, run_id)}
    if default_agents:
        agents = sorted(kept)
        if not agents:
            raise InvalidInputError(f"run {run_id} kept no legs in {repo.top}: only a kept leg (--keep) can be "
                                    "continued")
    found = {}
    for agent in agents:
        origin = leg_base(repo, run_id, agent)  # NotFoundError for an unknown run or agent
        session = load_session(run_id, agent)
        spec = specs.get(agent)
        if spec is None or spec.cli != session.cli:
            raise InvalidInputError(f"agent {agent!r} of run {run_id} ran {session.cli}; the config now names no "
                                    "such agent, or it runs another CLI")
        if (run_dir / agent).exists():
            raise ConflictError(f"{agent!r} of run {run_id} is running now (its run or another continuation)")
        found[agent] = Continuation(session=session, tip=kept[agent], origin=origin)
    return found
