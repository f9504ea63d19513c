"""The dashboard's screenshots in docs/img/, taken in headless Chromium against the bundled emulators (no key, no
network): a race, the spend panel, and a phone-sized window.

    python tools/dashboard_screenshots.py            # rewrite docs/img/dashboard-*.png
    python tools/dashboard_screenshots.py --out DIR

The whole stack runs as `llmmixer demo` runs it (emulators with the realistic latency profile, the adapter servers
over stdio). A few races fill the run log; for the spend panel to have a week to draw, copies of their records are
put in the log on each of the six days before, scaled so no two days look alike. Each PNG must stay under
:data:`MAX_BYTES` (tests/test_docs_screenshots.py checks the committed ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 200_000
PROMPTS = ["Why race several models on one prompt?", "What does a cancelled leg cost?",
           "Summarize the trade-off of racing in one sentence."]


async def _seed_week(store: Any) -> None:
    """Copies of today's records on each of the six days before, their costs scaled day by day."""
    records = await store.list_runs(limit=50)
    for day in range(1, 7):
        scale = 0.4 + 0.25 * ((day * 7) % 5)
        for record in records:
            result = dict(record.get("result") or {})
            result["legs"] = [{**leg, "cost_usd": (leg.get("cost_usd") or 0) * scale}
                              for leg in result.get("legs") or []]
            await store.put_run({**record, "run_id": f"{record['run_id']}d{day}",
                                 "created": record["created"] - day * 86400, "result": result})


async def _shoot(out: Path) -> list[Path]:
    from playwright.async_api import async_playwright

    from llmmixer.orchestrator.config import Config, default_servers
    from llmmixer.orchestrator.demo import _emulated
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store
    from llmmixer.orchestrator.web.app import create_app, running
    from llmmixer.servers.emulators.profiles import profile_behaviours
    from llmmixer.servers.emulators.server import EmulatorServer

    shots: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch, EmulatorServer(seed=7) as emulator:
        os.environ.update({**emulator.env, **{m.key_vars[0]: "demo" for m in _emulated()}})
        os.environ["XDG_CACHE_HOME"] = scratch  # the model cache of this run only
        names = [m.name for m in _emulated()]
        async with Runs(Config(servers=default_servers()), open_store(f"sqlite:///{scratch}/runs.db")) as runs:
            await runs.wait(await runs.start_ask("warm-up", models=names, mode="all"), 120)
            emulator.reset()
            vendors = [m.emulator.name for m in _emulated() if m.emulator is not None]
            for vendor, behaviour in profile_behaviours("realistic", vendors).items():
                emulator.set_behaviour(vendor, **behaviour.model_dump())
            for prompt in PROMPTS[1:]:
                await runs.wait(await runs.start_ask(prompt, models=names, mode="race"), 60)
            await runs.wait(await runs.start_ask("Which is faster?", models=names, mode="all"), 60)
            await runs.flush()
            await _seed_week(runs.store)
            async with running(create_app(runs, runs.store)) as url, async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                           args=["--no-sandbox", "--disable-gpu"])
                with anyio.fail_after(120):
                    page = await browser.new_page(viewport={"width": 1280, "height": 820})
                    await page.goto(url)
                    await page.wait_for_selector('#conn[data-state="live"]')
                    await page.fill("#prompt", PROMPTS[0])
                    await page.select_option("#mode", "race")
                    await page.click("#run")
                    await page.wait_for_selector('#run-info[data-done="true"]')
                    await page.wait_for_selector("#timeline:not([hidden]) .timeline-row")
                    await page.wait_for_selector('#history li.selected[data-status="done"]')
                    shots.append(out / "dashboard-race.png")
                    await page.screenshot(path=str(shots[-1]))

                    await page.click("#spend summary")
                    await page.wait_for_selector('#spend[data-loaded="7d"]')
                    shots.append(out / "dashboard-spend.png")
                    await page.locator("#spend").screenshot(path=str(shots[-1]))
                    await page.close()

                    phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                    await phone.goto(url)
                    await phone.wait_for_selector('#conn[data-state="live"]')
                    await phone.fill("#prompt", PROMPTS[2])
                    await phone.click("#run")
                    await phone.wait_for_selector('#run-info[data-done="true"]')
                    await phone.evaluate("window.scrollTo(0, 0)")
                    shots.append(out / "dashboard-phone.png")
                    await phone.screenshot(path=str(shots[-1]))
                await browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shots = anyio.run(_shoot, args.out)
    too_big = [shot for shot in shots if shot.stat().st_size >= MAX_BYTES]
    for shot in shots:
        print(f"{shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}: {shot.stat().st_size:,} bytes")
    if too_big:
        print(f"over {MAX_BYTES:,} bytes: {', '.join(map(str, too_big))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
