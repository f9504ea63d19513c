"""The dashboard's review buttons for an agent run's legs: ``POST /api/agents/{run_id}/{agent}/keep|apply``.

- ``keep``: the leg's branch ``llmmixer/<run>/<agent>`` exists afterwards. A run that kept its legs already has it;
  one that did not (a race without ``--keep``) gets it back from the commit the run recorded for the leg.
- ``apply``: keeps the leg, then applies it to the repository exactly as ``llmmixer agent apply RUN AGENT`` does
  (:func:`~llmmixer.orchestrator.agents.candidates.apply_leg`: a three-way merge of its diff).

Which repository, and which commit, come from the run's own result, never from the request: the request names a run
and one of its legs, nothing else. Errors: ``not_found`` (no such run, leg or commit), ``conflict`` (the run is still
going, or the diff does not apply cleanly: the conflicting files are named in ``details.conflicts``),
``invalid_input`` (a malformed name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import ConflictError, InvalidInputError, NotFoundError
from ..agents.candidates import apply_leg, restore_leg
from ..agents.worktree import Repo, repo_root
from ..service import RunService

__all__ = ["routes", "LegRef"]

AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class LegRef:
    """One kept leg as its run's result names it."""

    repo: Repo
    run_id: str
    agent: str
    commit: str


async def _leg(request: Request) -> LegRef:
    """The leg the path names, checked against its run's result.

    Raises:
        InvalidInputError: a malformed run id or agent name.
        NotFoundError: no such run, or no such leg in it (or one that never reached its check).
        ConflictError: the run is still going.
    """
    runs: RunService = request.app.state.runs
    run_id = runs.check_id(request.path_params["run_id"])
    agent = request.path_params["agent"]
    if not AGENT_NAME.fullmatch(agent):
        raise InvalidInputError("malformed agent name: expected one of the run's agents, as its result names them")
    snapshot = await runs.snapshot(run_id)
    if snapshot.get("kind") not in (None, "agent"):
        raise NotFoundError(f"run {run_id} is not a coding-agent run")
    if snapshot.get("status") in ("pending", "running"):
        raise ConflictError(f"run {run_id} is still going: keep or apply a leg once it has ended")
    leg = next((leg for leg in snapshot.get("legs") or () if isinstance(leg, dict) and leg.get("agent") == agent),
               None)
    if leg is None:
        raise NotFoundError(f"run {run_id} has no leg {agent!r}")
    commit = (leg.get("kept") or {}).get("commit")
    repo = snapshot.get("repo")
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit) or not isinstance(repo, str):
        raise NotFoundError(f"leg {agent!r} of run {run_id} left nothing to keep (it ended before its check)")
    return LegRef(repo=repo_root(repo), run_id=run_id, agent=agent, commit=commit)


def _keep(leg: LegRef) -> str:
    return restore_leg(leg.repo, leg.run_id, leg.agent, leg.commit)


async def keep(request: Request) -> Response:
    leg = await _leg(request)
    branch = await anyio.to_thread.run_sync(_keep, leg)
    return JSONResponse({"kept": True, "branch": branch, "commit": leg.commit})


async def apply(request: Request) -> Response:
    leg = await _leg(request)

    def keep_then_apply() -> dict[str, object]:
        _keep(leg)
        return apply_leg(leg.repo, leg.run_id, leg.agent)

    outcome = await anyio.to_thread.run_sync(keep_then_apply)
    if outcome["conflicts"]:
        raise ConflictError(f"applied {outcome['branch']} to {leg.repo.top} with conflicts (resolve them, then git "
                            f"add)", details={"branch": outcome["branch"], "conflicts": outcome["conflicts"]})
    return JSONResponse({**outcome, "repo": str(leg.repo.top)})


def routes() -> list[BaseRoute]:
    return [Route("/api/agents/{run_id}/{agent}/keep", keep, methods=["POST"]),
            Route("/api/agents/{run_id}/{agent}/apply", apply, methods=["POST"])]
