"""``llmmixer demo``: the whole stack against the bundled vendor emulators, with no API key and no network.

The emulators run in this process on a free loopback port; the three adapter servers are launched over stdio as
usual, pointed at them. Each vendor gets its own pace so the race has a clear winner, and the losers' upstream
streams are shown closing right after the win (the emulators record when each client hung up).
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["run_demo", "DEMO_BEHAVIOURS"]

# Time to first token and pace per vendor: the winner is clear and the losers are still streaming when it wins.
DEMO_BEHAVIOURS: dict[str, dict[str, Any]] = {
    "anthropic": {"ttft_ms": 150, "inter_token_ms": 25,
                  "reply": "Hello! ¡Hola! 안녕하세요! 👋 — Claude here, answering first."},
    "openai": {"ttft_ms": 450, "inter_token_ms": 30,
               "reply": "Hi there! Bonjour ! こんにちは! GPT, a little slower today."},
    "gemini": {"ttft_ms": 700, "inter_token_ms": 30,
               "reply": "Hallo! Ciao! 你好! Gemini, streaming from far away. 🌍"},
}
DEMO_KEYS = {"ANTHROPIC_API_KEY": "demo", "OPENAI_API_KEY": "demo", "GEMINI_API_KEY": "demo"}


async def run_demo(prompt: str, mode: str, as_json: bool) -> int:
    from ..servers.emulators.server import EmulatorServer
    from .config import Config, default_servers
    from .live import follow_ask
    from .runs import Runs
    from .stores import open_store

    with EmulatorServer(seed=1) as emulator:
        for vendor, behaviour in DEMO_BEHAVIOURS.items():
            emulator.set_behaviour(vendor, **behaviour)
        # The adapters read their base URLs and keys from the environment the orchestrator passes them.
        os.environ.update({**emulator.env, **DEMO_KEYS})
        config = Config(servers=default_servers())
        async with Runs(config, open_store("memory")) as runs:
            if not as_json:
                print(f"Emulated vendors on {emulator.root}; racing claude, gpt and gemini ({mode})…\n")
            run_id = await runs.start_ask(prompt, mode=mode)
            final = await follow_ask(runs, run_id, live=not as_json)
            await runs.flush()
            events = await runs.store.read_after(None, 100_000, run=run_id)
        won_at = next((e.ts for e in events if e.type == "leg.done" and e.source == final.get("winner")), None)
        closes = _close_delays(emulator.requests(), final, won_at)
    if as_json:
        print(json.dumps({**final, "upstream_close_ms": closes}, ensure_ascii=False, indent=2))
    else:
        for source, delay in closes.items():
            print(f"  {source}: upstream stream closed {delay:.1f} ms after the win")
    return 0 if final.get("status") == "done" else 1


def _close_delays(records: list[dict[str, Any]], final: dict[str, Any], won_at: float | None) -> dict[str, float]:
    """For each cancelled leg, how long after the win its vendor saw the connection close."""
    vendors = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
    by_vendor = {r["vendor"]: r for r in records}
    if won_at is None:
        return {}
    out = {}
    for leg in final.get("legs", []):
        record = by_vendor.get(vendors.get(leg["source"], ""))
        if leg["status"] == "cancelled" and record and record.get("closed_at"):
            out[leg["source"]] = round((record["closed_at"] - won_at) * 1000, 1)
    return out
