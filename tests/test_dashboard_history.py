"""The dashboard's history in headless Chromium, across a restart of the whole stack on one SQLite file.

A race runs (Claude first, GPT and Gemini cancelled) and a terminal command is cancelled from the page; then the
web app, the run service and every adapter server stop, new ones start on the same database, and a fresh page
(a reload) shows the history with prompts, opens the finished race from the store (won / cancelled badges, no
live Cancel) and draws its timeline. The timeline is checked in the DOM geometry (bars where the times say) and in
the screenshot's pixels (the winner's bar in the "won" colour).
"""

from __future__ import annotations

import struct
import zlib
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

PROMPT = "Which model streams fastest today?"
# (TTFT ms, inter-token ms): Claude streams first and finishes at about 2.5 s; the others start streaming well
# before that, slowly, and are cancelled mid-reply.
TIMING = {"anthropic": (100, 60), "openai": (600, 300), "gemini": (1100, 300)}
TOKENS = 40
WON_RGB = (0x3F, 0xB9, 0x50)  # --won in app.css


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB/RGBA PNG (what Chromium's screenshots are)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(line)
        prev = line
    pixels = [(row[x * channels], row[x * channels + 1], row[x * channels + 2]) for row in rows for x in range(width)]
    return width, height, pixels


async def stack(db: Path) -> Runs:
    return Runs(Config(servers=default_servers()), open_store(f"sqlite:///{db}"))


async def test_history_after_a_restart_opens_stored_runs_and_draws_the_race_timeline(
        emu: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "events.db"

    # -- first life: a race through the API, a command cancelled from the page -----------------------------------
    async with await stack(db) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini", "pty"])
        # Every server makes one call first: each loads its SDK then, so the race below measures the models.
        warm = await runs.start_ask("warm-up", models=["claude", "gpt", "gemini"], mode="all")
        assert await runs.wait(warm, 120)
        for vendor, (ttft, gap) in TIMING.items():
            emu.set_behaviour(vendor, ttft_ms=ttft, inter_token_ms=gap, tokens=TOKENS,
                              reply=f"{vendor} says hello " * 4)
        async with running(create_app(runs, runs.store)) as url:
            async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
                started = await client.post("/api/runs", json={"prompt": PROMPT, "mode": "race"})
                assert started.status_code == 202, started.text
                race_id = started.json()["run_id"]
                assert started.json()["conversation_id"]
                done = await client.get(f"/api/runs/{race_id}", params={"wait": 30})
                assert done.json()["winner"] == "claude", done.json()

            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            with anyio.fail_after(60):
                await page.goto(url)
                await page.wait_for_selector('#conn[data-state="live"]')
                await page.fill("#command", "sleep 30")
                await page.click("#run-command")
                await page.wait_for_selector("#terminal-pane:not([hidden])")
                await page.wait_for_selector('#run-info[data-done="false"]')
                await page.click("#cancel")
                await page.wait_for_selector('#terminal-status[data-status="cancelled"]')
                assert (await page.text_content("#terminal-status")) == "cancelled"
                assert await page.is_disabled("#cancel")
            await page.close()

    # -- second life: new processes on the same database, a fresh page ----------------------------------------
    async with await stack(db) as runs:
        async with running(create_app(runs, runs.store)) as url:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            console: list[str] = []
            page.on("pageerror", lambda error: console.append(f"Uncaught {error}"))
            with anyio.fail_after(60):
                await page.goto(url)
                entry = page.locator("#history li", has_text=PROMPT)
                await entry.wait_for()
                assert await page.locator("#history li", has_text="sleep 30").get_attribute("data-status") == \
                    "cancelled"
                await entry.click()
                await page.wait_for_selector('#run-info[data-done="true"]')
                await page.wait_for_selector('.column[data-source="claude"] .badge[data-status="won"]')
                for loser in ("gpt", "gemini"):
                    await page.wait_for_selector(f'.column[data-source="{loser}"] .badge[data-status="cancelled"]')
                assert await page.is_disabled("#cancel")
                assert "running" not in await page.inner_text("#run-info")
                await page.wait_for_selector('#timeline:not([hidden]) .timeline-row[data-source="gemini"]')
                shot = tmp_path / "dashboard-history.png"
                await page.screenshot(path=str(shot), full_page=True)
                geometry = await page.evaluate("""() => [...document.querySelectorAll('#timeline .timeline-row')]
                    .map(row => {
                      const track = row.querySelector('.timeline-track').getBoundingClientRect();
                      const box = (sel) => { const el = row.querySelector(sel); if (!el) return null;
                        const r = el.getBoundingClientRect(); return {left: r.left - track.left, width: r.width}; };
                      return {source: row.dataset.source, end: row.dataset.end, track: track.width,
                              trackBox: [track.left, track.top, track.width, track.height],
                              first: Number(row.dataset.firstTokenMs || NaN), endMs: Number(row.dataset.endMs),
                              duration: Number(document.querySelector('#timeline').dataset.durationMs),
                              stream: box('.seg-stream'), marker: box('.seg-end')};
                    })""")
            assert not console, console

    rows = {row["source"]: row for row in geometry}
    assert {s: r["end"] for s, r in rows.items()} == {"claude": "won", "gpt": "cancelled", "gemini": "cancelled"}
    claude, gpt, gemini = rows["claude"], rows["gpt"], rows["gemini"]
    # The winner streamed first; the losers were cancelled when it finished, before they could finish.
    assert claude["first"] < gpt["first"] < gemini["first"]
    assert abs(gpt["endMs"] - claude["endMs"]) < 200 and abs(gemini["endMs"] - claude["endMs"]) < 200
    for row in rows.values():  # each bar sits where its times say, on the one shared axis
        expected = row["first"] / row["duration"] * row["track"]
        assert row["stream"] is not None and abs(row["stream"]["left"] - expected) <= 3, row
        assert abs(row["marker"]["left"] + 1 - row["endMs"] / row["duration"] * row["track"]) <= 3, row
    assert claude["stream"]["left"] < gpt["stream"]["left"] < gemini["stream"]["left"]

    # The screenshot: the winner's bar is drawn in the "won" colour, the losers' are not.
    width, _, pixels = png_pixels(shot.read_bytes())

    def greens(row: dict[str, Any]) -> int:
        left, top, w, h = (round(v) for v in row["trackBox"])
        return sum(1 for y in range(top, top + h) for x in range(left, left + w)
                   if all(abs(a - b) <= 8 for a, b in zip(pixels[y * width + x], WON_RGB)))

    assert greens(claude) >= 0.3 * (claude["stream"]["width"] * 8), greens(claude)
    assert greens(gpt) <= 30 and greens(gemini) <= 30
