"""The dashboard's spend panel in headless Chromium, over a seeded run log: the `logs --stats` figures (runs, p50/p95
against the best single model, dollars on cancelled legs) in its tables, and spend over time and per model drawn by
the vendored Chart.js, checked in the charts' data and in the canvas pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from test_dashboard import CHROMIUM, browser  # noqa: F401 - the fixture
from test_stats import SEEDED

from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running

pytestmark = [pytest.mark.anyio, pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs chromium at {CHROMIUM}")]

KEPT_RGB = (0x3F, 0xB9, 0x50)  # "answers kept" in spend.js
CANCELLED_RGB = (0xD2, 0x99, 0x22)  # "cancelled legs"

PIXELS = """(args) => {
  const [id, rgb] = args;
  const canvas = document.getElementById(id);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 6 && Math.abs(data[i + 1] - rgb[1]) < 6 && Math.abs(data[i + 2] - rgb[2]) < 6) n++;
  }
  return n;
}"""


async def test_the_spend_panel_draws_the_seeded_figures(emu: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    async with Runs(Config(servers=default_servers()), store) as runs:
        for record in SEEDED:
            await runs.store.put_run(record)
        async with running(create_app(runs, runs.store)) as url:
            page = await browser.new_page(viewport={"width": 1400, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            with anyio.fail_after(60):
                await page.goto(url)
                await page.click("#spend summary")
                await page.wait_for_selector('#spend[data-loaded="7d"]')
                race = {cell: await page.inner_text(f'#spend-modes tr[data-mode="race"] td[data-field="{cell}"]')
                        for cell in ("runs", "p50_ms", "p95_ms", "p50_vs_best_single", "spend_usd",
                                     "cancelled_spend_usd")}
                row = '#spend-per-model tr[data-model="gpt-model"]'
                gpt = {cell: await page.inner_text(f'{row} td[data-field="{cell}"]')
                       for cell in ("runs", "wins", "p50_ms", "cancelled_spend_usd")}
                best = await page.inner_text("#spend-best")
                charts = await page.evaluate("""() => Object.fromEntries(['spend-time', 'spend-models'].map(id => {
                    const chart = Chart.getChart(document.getElementById(id));
                    return [id, {labels: chart.data.labels,
                                 datasets: chart.data.datasets.map(d => [d.label, d.data])}];
                  }))""")
                kept = await page.evaluate(PIXELS, ["spend-models", list(KEPT_RGB)])
                cancelled = await page.evaluate(PIXELS, ["spend-models", list(CANCELLED_RGB)])
                await page.select_option("#spend-since", "90d")  # the month-old run counts now
                await page.wait_for_selector('#spend[data-loaded="90d"]')
                runs_90d = await page.inner_text('#spend-modes tr[data-mode="race"] td[data-field="runs"]')
            await page.close()
    assert race == {"runs": "4", "p50_ms": "110 ms", "p95_ms": "130 ms", "p50_vs_best_single": "×1.00",
                    "spend_usd": "$0.0600", "cancelled_spend_usd": "$0.0200"}
    assert gpt == {"runs": "6", "wins": "0", "p50_ms": "400 ms", "cancelled_spend_usd": "$0.0080"}
    assert best == "best single model: claude-model, p50 110 ms, p95 130 ms"
    models = charts["spend-models"]
    assert models["labels"] == ["claude-model", "gemini-model", "gpt-model"]
    (kept_label, kept_data), (cancelled_label, cancelled_data) = models["datasets"]
    assert kept_label == "answers kept" and kept_data == pytest.approx([0.04, 0.0, 0.04])
    assert cancelled_label == "cancelled legs" and cancelled_data == pytest.approx([0.0, 0.012, 0.008])
    over_time = dict((label, data) for label, data in charts["spend-time"]["datasets"])
    assert len(charts["spend-time"]["labels"]) == len(over_time["gpt-model"]) >= 1
    assert sum(over_time["gpt-model"]) == pytest.approx(0.048) and sum(over_time["claude-model"]) == pytest.approx(0.04)
    assert kept > 200 and cancelled > 200, (kept, cancelled)  # both bars are painted on the canvas
    assert runs_90d == "5"
    assert errors == []
