"""The dashboard's new-run form and follow-ups in headless Chromium, checked at the emulator: a model picked per
server is the model the vendor is asked for; a finished run's conversation continued from the page sends the earlier
turns; a run another client starts appears live, with its model ids, and on a phone-sized window the results come
before the forms."""

from __future__ import annotations

import json
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

pytestmark = [pytest.mark.anyio, pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs chromium at {CHROMIUM}")]

FIRST_PROMPT = "Name a prime number"
FIRST_REPLY = "Seven is a prime number."


def calls(emu: Any, vendor: str) -> list[dict[str, Any]]:
    """The vendor's generation requests the emulator saw (model listings left out), oldest first."""
    return [r for r in emu.requests(vendor) if r["method"] == "POST"]


async def test_a_model_picked_per_server_is_asked_and_a_follow_up_carries_the_turns(
        emu: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    emu.set_behaviour("openai", reply=FIRST_REPLY, ttft_ms=0, inter_token_ms=5, tokens=5)
    async with Runs(Config(servers=default_servers()), open_store(f"sqlite:///{tmp_path / 'e.db'}")) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini"])
        async with running(create_app(runs, runs.store)) as url:
            async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                # what `llmmixer serve` does once its servers are warm: list them (the page reads that cache)
                assert (await client.get("/api/models")).status_code == 200
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            with anyio.fail_after(90):
                await page.goto(url)
                await page.wait_for_selector('#conn[data-state="live"]')
                pick = '#models select[data-server="gpt"]'
                await page.wait_for_selector(pick)
                assert await page.input_value(pick) == "gpt-5-mini"  # the server's default comes preselected
                await page.select_option(pick, "gpt-5-nano")
                for other in ("claude", "gemini"):
                    await page.uncheck(f'#models input[value="{other}"]')
                await page.fill("#prompt", FIRST_PROMPT)
                await page.click("#run")
                await page.wait_for_selector('#run-info[data-done="true"]')
                first_run = await page.get_attribute("#run-info", "data-run")
                assert "gpt-5-nano" in await page.inner_text('.column[data-source="gpt"] .name')
                assert await page.inner_text('.column[data-source="gpt"] .text') == FIRST_REPLY
                first = calls(emu, "openai")
                assert [r["body"]["model"] for r in first] == ["gpt-5-nano"]  # only gpt was asked, with that model

                await page.wait_for_selector("#follow-up:not([hidden])")
                await page.fill("#follow-up-prompt", "And the next one?")
                await page.click("#follow-up-run")
                await page.wait_for_function(
                    f"() => {{ const i = document.querySelector('#run-info');"
                    f" return i.dataset.run !== '{first_run}' && i.dataset.done === 'true'; }}")
                second_run = await page.get_attribute("#run-info", "data-run")

                # after a reload, a run opened from the history continues its conversation too
                await page.reload()
                await page.wait_for_selector('#conn[data-state="live"]')
                await page.click(f'#history li[data-run="{second_run}"]')
                await page.wait_for_selector(f'#run-info[data-run="{second_run}"][data-done="true"]')
                await page.wait_for_selector("#follow-up:not([hidden])")
                await page.fill("#follow-up-prompt", "And a third?")
                await page.click("#follow-up-run")
                earlier = json.dumps([first_run, second_run])
                await page.wait_for_function(
                    f"() => {{ const i = document.querySelector('#run-info');"
                    f" return !{earlier}.includes(i.dataset.run) && i.dataset.done === 'true'; }}")
            await page.close()
            async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                first_result = (await client.get(f"/api/runs/{first_run}")).json()
                second_result = (await client.get(f"/api/runs/{second_run}")).json()
    follow_up, third = calls(emu, "openai")[len(first):]
    assert follow_up["body"]["model"] == "gpt-5-nano"
    sent = json.dumps(follow_up["body"])
    # the earlier turns, then the new prompt: the vendor saw the whole conversation
    assert sent.index(FIRST_PROMPT) < sent.index(FIRST_REPLY) < sent.index("And the next one?")
    assert third["body"]["model"].startswith("gpt-5-nano")  # the model the run answered with (its dated id)
    sent = json.dumps(third["body"])
    assert sent.index(FIRST_PROMPT) < sent.index("And the next one?") < sent.index("And a third?")
    assert second_result["conversation_id"] == first_result["conversation_id"]
    assert errors == []


async def test_another_clients_run_appears_live_with_model_ids_and_leads_on_a_phone(
        emu: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    reply = " ".join(f"w{i:02d}" for i in range(60))
    for vendor in ("anthropic", "openai"):
        emu.set_behaviour(vendor, ttft_ms=0, inter_token_ms=40, tokens=60, reply=reply)
    async with Runs(Config(servers=default_servers()), open_store(f"sqlite:///{tmp_path / 'e.db'}")) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini"])
        async with running(create_app(runs, runs.store)) as url:
            page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            with anyio.fail_after(90):
                await page.goto(url)
                await page.wait_for_selector('#conn[data-state="live"]')
                await page.evaluate("window.loadedOnce = true")  # gone if the page reloads
                async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                    started = await client.post("/api/runs", json={
                        "prompt": "from another client", "models": ["claude", "gpt"], "mode": "all",
                        "model_for": {"gpt": "gpt-5-nano"}})
                    assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                # live: text in both columns while the run is still going
                await page.wait_for_function(
                    f"() => document.querySelector('#run-info').dataset.run === '{run_id}' &&"
                    " ['claude', 'gpt'].every(s => (window.llmmixer.columnText(s) || '').length > 0)")
                live = await page.evaluate(
                    "window.llmmixer.state.runs.get(window.llmmixer.state.current).done")
                await page.wait_for_selector(f'#history li[data-run="{run_id}"]')
                await page.wait_for_selector('.column[data-source="gpt"][data-model="gpt-5-nano"]')
                names = {s: await page.inner_text(f'.column[data-source="{s}"] .name') for s in ("claude", "gpt")}
                geometry = await page.evaluate("""() => ({
                    column: document.querySelector('.column').getBoundingClientRect().top,
                    form: document.querySelector('#ask-form').getBoundingClientRect().top,
                    fold: window.innerHeight, scrolled: window.scrollY,
                    overflow: document.documentElement.scrollWidth - window.innerWidth})""")
                await page.wait_for_selector('#run-info[data-done="true"]')
                assert await page.evaluate("window.loadedOnce === true")  # no reload
                texts = {s: await page.inner_text(f'.column[data-source="{s}"] .text') for s in ("claude", "gpt")}
            await page.close()
    assert live is False
    assert "claude-haiku-4-5" in names["claude"] and "gpt-5-nano" in names["gpt"]
    assert texts == {"claude": reply, "gpt": reply}
    # the answers are above the fold, before the new-run form
    assert geometry["scrolled"] == 0 and 0 <= geometry["column"] < geometry["fold"], geometry
    assert geometry["column"] < geometry["form"], geometry
    assert geometry["overflow"] <= 0, geometry  # nothing wider than the phone
    assert errors == []
