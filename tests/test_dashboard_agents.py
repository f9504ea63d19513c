"""The dashboard's review of an agent run, in headless Chromium, with the real Claude Code, Codex and Gemini CLI on
scripted models: each agent's column shows cards (what it said, the commands it ran and their exit codes, its check),
the review section shows the judge's verdict and every candidate's check output and side-by-side diff, and Apply
writes the chosen leg into the repository on disk.

The web app and the run service run in this process; the PTY runner, and so every CLI, runs inside the loopback-only
network namespace (the emulators listen there too), so nothing a CLI tries can leave the machine.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from test_dashboard import CHROMIUM, browser  # noqa: F401 - the fixture

from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.servers.core.workspace import ROOTS_ENV
from tests.agent_support import AgentWorld, agent_world, make_repo, needs_clis, shell_turns

__all__ = ["agent_world"]

pytestmark = [pytest.mark.anyio, pytest.mark.browser, needs_clis, pytest.mark.timeout(900),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs chromium at {CHROMIUM}")]

TASK = "Create created.txt and change old to new in edit.txt."
# Each passer writes its own name into created.txt, so applying one on top of the other conflicts.
TASK_COMMAND = "echo {agent} > created.txt && sed -i s/old/new/ edit.txt && echo ok-from-tool"
CHECK = "test -f created.txt && grep -qx new edit.txt"
AGENTS = ("claude-code", "codex", "gemini-cli")
MARKUP = "<img src=x onerror=window.pwned=1>wrong"
TOKEN = "review-token-0123456789"
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img"


def _config(world: AgentWorld) -> Config:
    """The built-in servers, the PTY runner launched inside the namespace."""
    servers = default_servers()
    pty = servers["pty"]
    assert pty.command is not None
    servers["pty"] = dataclasses.replace(pty, command=world.ns.exec_prefix[0],
                                         args=[*world.ns.exec_prefix[1:], pty.command, *pty.args])
    return Config(servers=servers)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


async def _shot(locator: Any, name: str, tmp: Path, *, height: float | None = None) -> None:
    """A PNG of ``locator`` (its top ``height`` pixels), under 200 KB; written over docs/img/``name`` (the docs'
    screenshots) when ``UPDATE_SCREENSHOTS=1``, else kept in the test's own directory."""
    folder = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if height is None:
        await locator.screenshot(path=str(path), type="png")
    else:
        box = await locator.bounding_box()
        await locator.page.screenshot(path=str(path), type="png", full_page=True,
                                      clip={**box, "height": min(box["height"], height)})
    assert path.stat().st_size < 200_000, (name, path.stat().st_size)


async def test_review_shows_every_candidate_and_apply_writes_the_chosen_leg(
        agent_world: AgentWorld, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    world = agent_world
    world.reset()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    world.emulator.set_script("anthropic", shell_turns("claude-code", TASK_COMMAND.format(agent="claude-code"),
                                                           say="Created it, changed it."))
    world.emulator.set_script("openai", shell_turns("codex", TASK_COMMAND.format(agent="codex") +
                                                    " && echo extra > extra.txt"))
    # Its check fails; its diff holds markup, which the page must show as text.
    world.emulator.set_script("gemini", shell_turns("gemini-cli", f"echo '{MARKUP}' > edit.txt"))
    verdict = {"winner": "B", "scores": [{"candidate": "A", "score": 4}, {"candidate": "B", "score": 9}],
               "reason": "B is the cleaner change"}
    world.emulator.set_behaviour("gemini", reply_json=verdict)  # the judge's answer (its request has no tools)
    repo = make_repo(tmp_path / "repo")
    # The runner's roots: the legs' directory (LLMMIXER_AGENTS_DIR) and the repository, whose git directory each
    # leg's git writes to (`llmmixer agent` run in the repository has it as its working directory).
    monkeypatch.setenv(ROOTS_ENV, str(repo))
    async with Runs(_config(world), open_store(f"sqlite:///{tmp_path / 'e.db'}")) as runs:
        async with running(create_app(runs, runs.store, token=TOKEN)) as url:
            page = await browser.new_page(viewport={"width": 1500, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(base_url=url, timeout=60, headers=auth) as client:
                with anyio.fail_after(60):
                    await page.goto(f"{url}/?token={TOKEN}")  # the token becomes the page's cookie
                    await page.wait_for_selector('#conn[data-state="live"]')
                # Every leg runs to its end; keep: false, so no branch is made until Keep or Apply asks for one.
                started = await client.post("/api/agents", json={
                    "task": TASK, "check": CHECK, "agents": list(AGENTS), "mode": "all", "pick": "best",
                    "judge": "gemini", "keep": False, "cwd": str(repo)})
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                with anyio.fail_after(600):
                    result = (await client.get(f"/api/runs/{run_id}", params={"wait": 60})).json()
                    while result["status"] in ("pending", "running"):
                        result = (await client.get(f"/api/runs/{run_id}", params={"wait": 60})).json()
                assert result["status"] == "done", [(leg["agent"], leg["status"], leg["error"])
                                                    for leg in result["legs"]]
                winner = result["winner"]
                loser = "codex" if winner == "claude-code" else "claude-code"
                assert winner in ("claude-code", "codex") and result["verdict"]["winner"] == winner
                assert _git(repo, "branch", "--list", "llmmixer/*") == ""  # nothing kept yet

                with anyio.fail_after(120):
                    entry = page.locator(f'#history li[data-run="{run_id}"]')
                    await entry.wait_for()
                    await entry.click()
                    await page.wait_for_selector("#agent-review .candidate .d2h-file-side-diff")
                    # Each column: its cards, from the CLI's own events.
                    for agent in AGENTS:
                        column = page.locator(f'.column[data-source="{agent}"]')
                        await column.locator('.card[data-kind="command"] .card-command').first.wait_for()
                    cards = {agent: await page.locator(f'.column[data-source="{agent}"] .card').all_inner_texts()
                             for agent in AGENTS}
                    judge_status = await page.get_attribute('.column[data-source="judge"] .badge', "data-status")
                    # The review: the verdict, then one candidate per leg with its check and its diff.
                    verdict_text = await page.inner_text("#agent-review .verdict")
                    candidates = await page.locator("#agent-review .candidate").evaluate_all(
                        "nodes => nodes.map(n => n.dataset.agent)")
                    diff_files = {agent: await page.locator(f'#agent-review .candidate[data-agent="{agent}"] '
                                                            f'.d2h-file-header .d2h-file-name').all_inner_texts()
                                  for agent in AGENTS}
                    check_text = await page.inner_text(
                        '#agent-review .candidate[data-agent="gemini-cli"] .candidate-check summary')
                    gemini_diff = await page.inner_text('#agent-review .candidate[data-agent="gemini-cli"] '
                                                        '.candidate-diff')
                    injected = await page.evaluate("window.pwned !== undefined || !!document.querySelector("
                                                   "'.candidate-diff img')")
                    side_by_side = await page.locator(
                        f'#agent-review .candidate[data-agent="{winner}"] .d2h-file-side-diff').count()
                    await _shot(page.locator(".output"), "agents-dashboard.png", tmp_path, height=1100)
                    await _shot(page.locator(f'.column[data-source="{winner}"]'), "agents-cards.png", tmp_path)
                    await _shot(page.locator(f'#agent-review .candidate[data-agent="{winner}"]'), "agents-review.png",
                                tmp_path)

                    # Keep the failed leg: its branch comes back from the commit the run recorded.
                    gemini = page.locator('#agent-review .candidate[data-agent="gemini-cli"]')
                    await gemini.locator("button.keep").click()
                    await gemini.locator('.action-note[data-state="ok"]').wait_for()
                    # Apply the winner: its files land in the repository.
                    chosen = page.locator(f'#agent-review .candidate[data-agent="{winner}"]')
                    await chosen.locator("button.apply").click()
                    await chosen.locator('.action-note[data-state="ok"]').wait_for()
                    applied_note = await chosen.locator(".action-note").inner_text()
                    on_disk = {name: (repo / name).read_text() if (repo / name).exists() else None
                               for name in ("edit.txt", "created.txt", "extra.txt")}
                    # The other passer wrote created.txt differently: applying it on top conflicts, as the page says.
                    other = page.locator(f'#agent-review .candidate[data-agent="{loser}"]')
                    await other.locator("button.apply").click()
                    await other.locator('.action-note[data-state="error"]').wait_for()
                    conflict_note = await other.locator(".action-note").inner_text()

                # A page opened after the run shows the same cards: it replays the run's events.
                fresh = await browser.new_page(viewport={"width": 1500, "height": 1000})
                fresh.on("pageerror", lambda error: errors.append(str(error)))
                with anyio.fail_after(120):
                    await fresh.goto(f"{url}/?token={TOKEN}")
                    await fresh.locator(f'#history li[data-run="{run_id}"]').click()
                    await fresh.wait_for_selector("#agent-review .candidate .d2h-file-side-diff")
                    await fresh.locator('.column[data-source="gemini-cli"] .card[data-kind="check"] .exit.bad'
                                        ).wait_for()
                    replayed = {agent: await fresh.locator(f'.column[data-source="{agent}"] .card').all_inner_texts()
                                for agent in AGENTS}
                await fresh.close()

                # The HTTP face: the token guards it; a leg the run does not have, or a malformed name, is refused.
                async with httpx2.AsyncClient(base_url=url, timeout=30) as anonymous:
                    refused = await anonymous.post(f"/api/agents/{run_id}/{winner}/apply",
                                                   headers={"X-LLMMixer": "1"})
                missing = await client.post(f"/api/agents/{run_id}/aider/apply", headers={"X-LLMMixer": "1"})
                malformed = await client.post(f"/api/agents/{run_id}/..x/keep", headers={"X-LLMMixer": "1"})
                unknown_run = await client.post("/api/agents/r-000000000000/codex/keep", headers={"X-LLMMixer": "1"})
            await page.close()

    assert errors == []
    assert MARKUP in gemini_diff and not injected
    assert replayed == cards
    assert candidates == list(AGENTS)
    for agent in ("claude-code", "codex"):
        assert "created.txt" in diff_files[agent] and "edit.txt" in diff_files[agent], diff_files
    assert ("extra.txt" in diff_files["codex"]) and "extra.txt" not in diff_files["claude-code"]
    assert diff_files["gemini-cli"] == ["edit.txt"]
    assert side_by_side >= 2  # diff2html's side-by-side view: two sides per file
    assert "exit 1" in check_text  # the failed check, with its exit code
    assert judge_status == "done"  # its column ends with its verdict
    assert f"winner {winner}" in verdict_text and "B is the cleaner change" in verdict_text
    assert "9" in verdict_text and "4" in verdict_text
    assert any("Created it, changed it." in card for card in cards["claude-code"]), cards["claude-code"]
    for agent in AGENTS:
        commands = [card for card in cards[agent] if card.upper().startswith("RUNS")]
        checks = [card for card in cards[agent] if card.upper().startswith("CHECK")]
        assert commands and all("$ " in card for card in commands), cards[agent]
        assert len(checks) == 1 and ("exit 1" if agent == "gemini-cli" else "exit 0") in checks[0], cards[agent]
    # On disk: the winner's change, exactly. Keep made the failed leg's branch; Apply keeps what it applies (or tries).
    assert on_disk == {"edit.txt": "new\n", "created.txt": f"{winner}\n",
                       "extra.txt": "extra\n" if winner == "codex" else None}
    assert f"applied llmmixer/{run_id}/{winner}" in applied_note
    branches = _git(repo, "branch", "--list", "llmmixer/*", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(f"llmmixer/{run_id}/{agent}" for agent in AGENTS)
    assert conflict_note.startswith("conflict:") and "created.txt" in conflict_note, conflict_note
    assert refused.status_code == 401
    assert missing.status_code == 404 and missing.json()["error"]["kind"] == "not_found"
    assert malformed.status_code == 400 and malformed.json()["error"]["kind"] == "invalid_input"
    assert unknown_run.status_code in (400, 404)
    world.assert_stayed_home()
