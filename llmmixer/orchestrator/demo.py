"""``llmmixer demo``: the whole stack against the bundled vendor emulators, with no API key and no network.

The emulators run in this process on a free loopback port; every registered adapter server that has an emulator
(its manifest says so) is launched over stdio as usual, pointed at it. Each gets its own pace so the race has a
clear winner, and the losers' upstream streams are shown closing right after the win (the emulators record when
each client hung up).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..servers.core.manifest import ServerManifest, model_manifests

__all__ = ["run_demo", "demo_behaviours"]

GREETINGS = ("Hello! ¡Hola! 안녕하세요! 👋", "Hi there! Bonjour ! こんにちは!", "Hallo! Ciao! 你好! 🌍", "Hej! Olá! Merhaba!")


def _emulated() -> list[ServerManifest]:
    return [m for m in model_manifests() if m.emulator is not None and m.key_vars]


def demo_behaviours() -> dict[str, dict[str, Any]]:
    """Emulated vendor -> its pace and reply: the first server answers first; the others are still streaming when
    it wins."""
    return {m.emulator.name: {"ttft_ms": 150 + 300 * i, "inter_token_ms": 25 + 5 * min(i, 1),
                              "reply": f"{GREETINGS[i % len(GREETINGS)]} — {m.title} here."}
            for i, m in enumerate(_emulated()) if m.emulator is not None}


async def run_demo(prompt: str, mode: str, as_json: bool) -> int:
    from ..servers.emulators.server import EmulatorServer
    from .config import Config, default_servers
    from .live import follow_ask
    from .runs import Runs
    from .stores import open_store

    with EmulatorServer(seed=1) as emulator:
        for vendor, behaviour in demo_behaviours().items():
            emulator.set_behaviour(vendor, **behaviour)
        # The adapters read their base URLs and keys from the environment the orchestrator passes them.
        os.environ.update({**emulator.env, **{m.key_vars[0]: "demo" for m in _emulated()}})
        config = Config(servers=default_servers())
        async with Runs(config, open_store("memory")) as runs:
            if not as_json:
                names = ", ".join(m.name for m in _emulated())
                print(f"Emulated vendors on {emulator.root}; racing {names} ({mode})…\n")
            run_id = await runs.start_ask(prompt, models=[m.name for m in _emulated()], mode=mode)
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
    vendors = {m.name: m.emulator.name for m in _emulated() if m.emulator is not None}
    by_vendor = {r["vendor"]: r for r in records}
    if won_at is None:
        return {}
    out = {}
    for leg in final.get("legs", []):
        record = by_vendor.get(vendors.get(leg["source"], ""))
        if leg["status"] == "cancelled" and record and record.get("closed_at"):
            out[leg["source"]] = round((record["closed_at"] - won_at) * 1000, 1)
    return out
