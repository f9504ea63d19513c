"""The dashboard in real headless Chromium against the whole stack: web app → Runs → MCP adapter servers (stdio) →
official SDKs → emulators. A race streams three columns, one wins and two are cancelled; the SSE connection is cut
server-side mid-run and the page resumes with no text shown twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

REPLIES = {
    "anthropic": "Claude streams first and wins this race. 안녕 👋 " * 2,
    "openai": "GPT starts later and is cancelled mid-sentence. " * 3,
    "gemini": "Gemini starts last and is cancelled as well. " * 3,
}
# (TTFT ms, inter-token ms): the race lasts a couple of seconds, long enough to cut the stream in its middle.
TIMING = {"anthropic": (300, 60), "openai": (500, 60), "gemini": (700, 60)}
VENDOR = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
TOKENS = 30


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def store_deltas(url: str, run_id: str) -> dict[str, str]:
    """The text each leg streamed, assembled from the run's events as the store holds them."""
    texts: dict[str, str] = {}
    async with httpx2.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{url}/events", params={"run": run_id}) as response:
            async for sse in httpx2.EventSource(response):
                event = json.loads(sse.data) if sse.data else {}
                if sse.event == "delta":
                    texts[event["source"]] = texts.get(event["source"], "") + event["data"]["text"]
                if sse.event == "run.done":
                    return texts
    return texts


async def test_race_streams_three_columns_and_survives_a_cut_stream(emu: Any, browser: Any, tmp_path: Path) -> None:
    async with Runs(Config(servers=default_servers()), open_store("memory")) as runs:
        # Every server makes one call first: each loads its SDK then, so the race below measures the models.
        warm = await runs.start_ask("warm-up", models=["claude", "gpt", "gemini"], mode="all")
        assert await runs.wait(warm, 120)
        emu.reset()
        for vendor, (ttft, gap) in TIMING.items():
            emu.set_behaviour(vendor, ttft_ms=ttft, inter_token_ms=gap, tokens=TOKENS, reply=REPLIES[vendor])
        app = create_app(runs, runs.store)
        async with running(app) as url:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.on("pageerror", lambda error: console.append(f"Uncaught {error}"))
            with anyio.fail_after(60):
                await page.goto(url)
                await page.wait_for_selector('#conn[data-state="live"]')
                await page.fill("#prompt", "Who streams fastest?")
                await page.select_option("#mode", "race")
                await page.click("#run")

                # All three columns stream; then cut every SSE connection while the race is still on.
                await page.wait_for_function(
                    "() => ['claude','gpt','gemini'].every(s => (window.llmmixer.columnText(s) || '').length > 0)")
                run_id = await page.evaluate("window.llmmixer.state.current")
                assert not await page.evaluate("window.llmmixer.state.runs.get(window.llmmixer.state.current).done")
                opens_before = await page.evaluate("window.llmmixer.state.stats.opens")
                assert app.state.streams.drop_all() >= 1

                await page.wait_for_function(f"() => window.llmmixer.state.stats.opens > {opens_before}")
                await page.wait_for_selector('#run-info[data-done="true"]')
                await page.wait_for_selector('.column[data-source="claude"] .badge[data-status="won"]')
                for loser in ("gpt", "gemini"):
                    await page.wait_for_selector(f'.column[data-source="{loser}"] .badge[data-status="cancelled"]')
                await page.screenshot(path=str(tmp_path / "dashboard-race.png"), full_page=True)

                async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
                    result = (await client.get(f"/api/runs/{run_id}")).json()
                streamed = await store_deltas(url, run_id)

            assert (tmp_path / "dashboard-race.png").stat().st_size > 10_000
            legs = {leg["source"]: leg for leg in result["legs"]}
            assert result["winner"] == "claude"
            assert legs["claude"]["text"] == REPLIES["anthropic"]
            for source in ("claude", "gpt", "gemini"):
                shown = await page.inner_text(f'.column[data-source="{source}"] .text')
                # What the page shows is exactly what was streamed (nothing twice, nothing missing across the cut);
                # cancelled legs stop mid-reply, so theirs is a prefix of the full reply.
                assert shown == streamed[source], source
                assert REPLIES[VENDOR[source]].startswith(shown), source
            stats = await page.evaluate("window.llmmixer.state.stats")
            assert stats["opens"] >= 2 and stats["errors"] == 0
            assert not [line for line in console if "Uncaught" in line], console


async def test_synthesize_shows_the_aggregator_in_its_own_column_and_a_cooling_server(emu: Any, browser: Any,
                                                                                      tmp_path: Path) -> None:
    config = Config(servers=default_servers())
    config.settings.cooldown_file = str(tmp_path / "cooldowns.json")
    async with Runs(config, open_store("memory")) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini"])
        # gemini asked us to wait a minute: the model list says so, and the run skips it
        runs.mixer.cooldowns.note_error("gemini", {"kind": "rate_limit", "retry_after_s": 60})
        emu.queue("anthropic", {"reply": "Claude's proposal.", "ttft_ms": 50},
                  {"reply": "The synthesis of both proposals.", "ttft_ms": 50, "inter_token_ms": 20, "tokens": 8})
        emu.set_behaviour("openai", reply="GPT's proposal.", ttft_ms=100)
        app = create_app(runs, runs.store)
        async with running(app) as url:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            console: list[str] = []
            page.on("pageerror", lambda error: console.append(f"Uncaught {error}"))
            with anyio.fail_after(60):
                await page.goto(url)
                await page.wait_for_selector('#conn[data-state="live"]')
                await page.wait_for_selector("#models .cooling")
                cooling = await page.inner_text("#models")
                assert "gemini" in cooling and "cooling down until" in cooling
                await page.fill("#prompt", "Combine your answers")
                await page.select_option("#mode", "synthesize")
                await page.click("#run")
                await page.wait_for_selector('#run-info[data-done="true"]')
                column = '.column[data-source="aggregator"]'
                await page.wait_for_selector(f'{column}[data-role="aggregator"] .badge[data-status="won"]')
                await page.wait_for_selector('.column[data-source="gemini"] .badge[data-status="skipped"]')
                await page.screenshot(path=str(tmp_path / "dashboard-synthesize.png"), full_page=True)
                assert await page.inner_text(f"{column} .text") == "The synthesis of both proposals."
                assert "claude" in await page.inner_text(f"{column} .name")  # the server playing the aggregator
                assert "cooling down until" in await page.inner_text('.column[data-source="gemini"] .error')
                for proposer, text in (("claude", "Claude's proposal."), ("gpt", "GPT's proposal.")):
                    assert await page.inner_text(f'.column[data-source="{proposer}"] .text') == text
    assert not console, console
