"""``POST /api/agents/{run}/{agent}/keep|apply`` (web/agent_actions.py) on a real port and a real repository, over the
API tests' stand-in run service: the run's result names the repository and each leg's commit; the request names only
the run and the leg. The dashboard's buttons in Chromium, with the real CLIs, are in test_dashboard_agents.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_agent_candidates import git, kept_leg, repo  # noqa: F401 - the fixture
from test_web_api import FakeRuns, api, assert_error

from llmmixer.orchestrator.agents.candidates import forget_leg
from llmmixer.orchestrator.agents.worktree import repo_root

pytestmark = pytest.mark.anyio

WRITE = {"X-LLMMixer": "1"}


@pytest.fixture
def finished(repo: Path, tmp_path: Path) -> FakeRuns:  # noqa: F811
    """Run ``r1`` over, its leg ``codex`` committed but not kept (a race without --keep)."""
    commit = kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n", "created.txt": b"created\n"})["commit"]
    forget_leg(repo_root(repo), "r1", "codex")
    runs = FakeRuns()
    runs.snapshots["r1"] = {"run_id": "r1", "kind": "agent", "status": "done", "repo": str(repo),
                            "legs": [{"agent": "codex", "status": "won", "kept": {"commit": commit, "branch": None}},
                                     {"agent": "gemini-cli", "status": "error", "kept": None}]}
    runs.snapshots["r2"] = {"run_id": "r2", "kind": "agent", "status": "running"}
    runs.snapshots["r3"] = {"run_id": "r3", "kind": "ask", "status": "done"}
    return runs


async def test_keep_then_apply_writes_the_leg_into_the_repository(finished: FakeRuns, repo: Path) -> None:  # noqa: F811
    async with api(finished) as (client, _):
        kept = await client.post("/api/agents/r1/codex/keep", headers=WRITE)
        assert kept.status_code == 200, kept.text
        assert kept.json()["branch"] == "llmmixer/r1/codex"
        branches = git(repo, "branch", "--list", "llmmixer/*", "--format=%(refname:short)").split()
        assert branches == ["llmmixer/r1/codex"]
        assert (repo / "edit.txt").read_text() == "old\n"  # keeping leaves the tree alone
        applied = await client.post("/api/agents/r1/codex/apply", headers=WRITE)
        assert applied.status_code == 200, applied.text
        assert applied.json()["applied"] is True and applied.json()["conflicts"] == []
        assert (repo / "edit.txt").read_text() == "new\n" and (repo / "created.txt").read_text() == "created\n"
        again = await client.post("/api/agents/r1/codex/apply", headers=WRITE)  # a second click: same tree
        assert again.status_code == 200, again.text
        assert (repo / "edit.txt").read_text() == "new\n" and (repo / "created.txt").read_text() == "created\n"


async def test_apply_names_the_conflicting_files(finished: FakeRuns, repo: Path) -> None:  # noqa: F811
    (repo / "edit.txt").write_text("the user's\n")
    git(repo, "commit", "-qam", "the user moved on")
    async with api(finished) as (client, _):
        conflicted = await client.post("/api/agents/r1/codex/apply", headers=WRITE)
    error = assert_error(conflicted, 409, "conflict")
    assert error["details"] == {"branch": "llmmixer/r1/codex", "conflicts": ["edit.txt"]}
    assert "<<<<<<<" in (repo / "edit.txt").read_text()


async def test_what_is_refused(finished: FakeRuns) -> None:
    async with api(finished) as (client, _):
        assert_error(await client.post("/api/agents/r1/aider/apply", headers=WRITE), 404, "not_found")
        assert_error(await client.post("/api/agents/r1/gemini-cli/keep", headers=WRITE), 404, "not_found")
        assert_error(await client.post("/api/agents/r9/codex/keep", headers=WRITE), 404, "not_found")
        assert_error(await client.post("/api/agents/r3/codex/keep", headers=WRITE), 404, "not_found")
        assert_error(await client.post("/api/agents/r2/codex/apply", headers=WRITE), 409, "conflict")
        assert_error(await client.post("/api/agents/r1/..codex/apply", headers=WRITE), 400, "invalid_input")
        assert_error(await client.post("/api/agents/r1/codex/apply"), 403, "permission")  # no cross-site writes
        assert (await client.get("/api/agents/r1/codex/apply")).status_code == 405


async def test_the_token_guards_them(finished: FakeRuns) -> None:
    async with api(finished, token="t0ken-0123456789") as (client, _):
        assert_error(await client.post("/api/agents/r1/codex/keep", headers=WRITE), 401, "auth")
        kept = await client.post("/api/agents/r1/codex/keep", headers={**WRITE, "Authorization": "Bearer "
                                                                                            "t0ken-0123456789"})
        assert kept.status_code == 200, kept.text
