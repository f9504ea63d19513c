"""issue 27, item 2, in headless Chromium: a run still streaming, opened from a freshly loaded page's history, shows
every character from its first (the page replays the run's events, then follows it live), and each column names
its model."""

from __future__ import annotations

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

REPLY = " ".join(f"w{i:03d}" for i in range(120))  # 479 characters, one word a delta


async def test_a_live_run_opened_from_a_fresh_page_shows_every_character(
        emu: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    emu.set_behaviour("anthropic", ttft_ms=0, inter_token_ms=40, tokens=120, reply=REPLY)
    emu.set_behaviour("openai", ttft_ms=0, inter_token_ms=40, tokens=120, reply=REPLY)
    async with Runs(Config(servers=default_servers()), open_store(f"sqlite:///{tmp_path / 'e.db'}")) as runs:
        await runs.pool.prepare(["claude", "gpt"])
        async with running(create_app(runs, runs.store)) as url:
            async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                started = await client.post("/api/runs", json={"prompt": "count", "models": ["claude", "gpt"],
                                                               "mode": "all"})
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                # The page opens only once both legs have streamed part of their answers.
                with anyio.fail_after(60):
                    while True:
                        snap = (await client.get(f"/api/runs/{run_id}")).json()
                        partial = snap.get("partial") or {}
                        if all(len(partial.get(s, "")) > 40 for s in ("claude", "gpt")):
                            break
                        await anyio.sleep(0.05)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            with anyio.fail_after(90):
                await page.goto(url)
                entry = page.locator(f'#history li[data-run="{run_id}"]')
                await entry.wait_for()
                await entry.click()
                for source in ("claude", "gpt"):
                    await page.wait_for_selector(f'.column[data-source="{source}"] .badge[data-status="done"]')
                texts = {source: await page.text_content(f'.column[data-source="{source}"] .text')
                         for source in ("claude", "gpt")}
                names = {source: await page.text_content(f'.column[data-source="{source}"] .name')
                         for source in ("claude", "gpt")}
            await page.close()
    assert texts == {"claude": REPLY, "gpt": REPLY}  # every character, in order, once
    assert "claude-haiku-4-5" in names["claude"] and "gpt-5-mini" in names["gpt"]
    assert errors == []
