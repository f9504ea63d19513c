"""``llmmixer demo``: the whole stack against the bundled vendor emulators, with no API key and no network.

The emulators run in this process on a free loopback port; every registered adapter server that has an emulator
(its manifest says so) is launched over stdio as usual, pointed at it. Each vendor answers with the emulators'
``realistic`` latency profile (its own time to first token, jitter and slow tail), so the race has a real winner;
the losers' upstream streams are shown closing right after the win (the emulators record when each client hung
up), and the demo ends by saying what it showed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..servers.core.manifest import ServerManifest, model_manifests

__all__ = ["run_demo", "what_it_showed"]



def _emulated() -> list[ServerManifest]:
    return [m for m in model_manifests() if m.emulator is not None and m.key_vars]


async def run_demo(prompt: str, mode: str, as_json: bool, seed: int | None = None) -> int:
    from ..servers.emulators.profiles import profile_behaviours
    from ..servers.emulators.server import EmulatorServer
    from .config import Config, default_servers
    from .live import follow_ask
    from .runs import Runs
    from .stores import open_store

    with EmulatorServer(seed=seed) as emulator:
        # The adapters read their base URLs and keys from the environment the orchestrator passes them.
        os.environ.update({**emulator.env, **{m.key_vars[0]: "demo" for m in _emulated()}})
        config = Config(servers=default_servers())
        names = [m.name for m in _emulated()]
        async with Runs(config, open_store("memory")) as runs:
            if not as_json:
                print(f"Starting {', '.join(names)} against emulated vendors on {emulator.root}…")
            # One instant call each first (the servers load their SDKs on their first call): the race then
            # measures the vendors' profiles, not which SDK imports fastest.
            await runs.wait(await runs.start_ask("warm-up", models=names, mode="all"), 120)
            emulator.reset()
            for vendor, behaviour in profile_behaviours("realistic", [m.emulator.name for m in _emulated()
                                                                      if m.emulator is not None]).items():
                emulator.set_behaviour(vendor, **behaviour.model_dump())
            if not as_json:
                print(f"Racing {', '.join(names)} ({mode}), each vendor with its own latency profile…\n")
            run_id = await runs.start_ask(prompt, models=names, mode=mode)
            final = await follow_ask(runs, run_id, live=not as_json)
            await runs.flush()
            events = await runs.store.read_after(None, 100_000, run=run_id)
        won_at = next((e.ts for e in events if e.type == "leg.done" and e.source == final.get("winner")), None)
        closes = _close_delays(emulator.requests(), final, won_at)
    if as_json:
        print(json.dumps({**final, "upstream_close_ms": closes}, ensure_ascii=False, indent=2))
    elif not final.get("interrupted"):
        print("\n" + "\n".join(what_it_showed(final, closes)))
    if final.get("interrupted"):
        return 130
    return 0 if final.get("status") == "done" else 1


def what_it_showed(final: dict[str, Any], closes: dict[str, float]) -> list[str]:
    """The demo's closing words: who won and why, what the others cost, how soon their streams were closed."""
    legs = final.get("legs") or []
    winner = next((leg for leg in legs if leg.get("source") == final.get("winner")), None)
    lines = ["What you just saw:"]
    if winner is not None:
        ttft = winner.get("ttft_ms")
        lines.append(f"- {winner['source']} ({winner.get('model')}) won: first token after "
                     f"{ttft:.0f} ms, whole answer after {winner.get('latency_ms') or 0:.0f} ms."
                     if ttft is not None else f"- {winner['source']} won.")
    for leg in legs:
        if leg.get("status") == "cancelled":
            close = closes.get(leg["source"])
            closed = f"; its HTTP stream was closed {close:.1f} ms after the win" if close is not None else ""
            lines.append(f"- {leg['source']} was cancelled with {len(leg.get('text') or '')} characters streamed"
                         f"{closed}, so it stopped costing money.")
        elif leg.get("status") == "error":
            lines.append(f"- {leg['source']} failed: {(leg.get('error') or {}).get('kind')}.")
    if final.get("total_cost_usd") is not None:
        lines.append(f"- The race cost ${final['total_cost_usd']:.6f} at list prices (cancelled legs estimated).")
    lines.append("Every vendor here is an emulator with its own latency, jitter and slow tail: run it again and "
                 "another may win. Next: `llmmixer emulators` to try every command offline, or set your keys "
                 "and `llmmixer ask`.")
    return lines


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
