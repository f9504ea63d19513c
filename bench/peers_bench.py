"""LLMMixer against LiteLLM, the library a user would pick instead, on the same emulators in the same run.

``python -m bench --peers`` (install the ``bench-peers`` extra: ``pip install -e '.[bench-peers]'``). Every figure
is measured for both sides, interleaved sample by sample, against one emulator process on 127.0.0.1:

- one streamed call: time to first token and total, from the caller's side (ours: ``Runs.start_ask`` to the
  orchestrator's ``leg.first_token`` / ``leg.done`` event; LiteLLM: ``acompletion(stream=True)`` to its first
  content chunk / its last chunk);
- 1, 10 and 50 concurrent single-model calls, total latency;
- a race over 3, 6 and 12 legs (LiteLLM: ``Router.abatch_completion_fastest_response``, its fastest-response
  router), its latency and how long each loser's upstream HTTP stays open after the race is decided, as the
  emulator recorded it. Every loser counts, on both sides alike (:func:`_loser_closes`): each side's losers get the
  same grace, :data:`CLOSE_GRACE_S` from the decision, to be closed; a loser still open then counts as the grace,
  one whose request never reached the vendor as 0 ms (and is counted apart in the note), and a loser that streamed
  to its end is counted apart (``streamed to the end``), never dropped;
- the memory of those races: the resident set of the process (LiteLLM), against ours with one process per server
  (the orchestrator plus its adapter children) and with every server ``inprocess``.

Each leg of a race is its own deployment: for us an adapter server of its own (a user's ``mcpServers`` entry), for
LiteLLM an entry of its ``model_list``. Both sides get the same per-request behaviours queued at the emulator, so
whichever leg draws the fastest behaviour wins on both sides.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from .emulator import emulator_process
from .stats import percentile, row

VENDORS = (("claude", "anthropic"), ("gpt", "openai"), ("gemini", "gemini"))
MODELS = {"claude": "claude-haiku-4-5", "gpt": "gpt-5-mini", "gemini": "gemini-2.5-flash"}
PROMPT = "bench prompt"


def _litellm_model(source: str, env: dict[str, str]) -> dict[str, Any]:
    """LiteLLM's parameters for one of our vendors, pointed at the emulator."""
    if source == "claude":
        return {"model": f"anthropic/{MODELS[source]}", "api_base": env["ANTHROPIC_BASE_URL"]}
    if source == "gpt":
        return {"model": f"openai/{MODELS[source]}", "api_base": env["OPENAI_BASE_URL"]}
    return {"model": f"gemini/{MODELS[source]}", "api_base": env["GOOGLE_GEMINI_BASE_URL"] + "/v1beta"}


def _legs(count: int) -> list[tuple[str, str]]:
    """``count`` legs as (leg name, vendor source), spread evenly over the three vendors."""
    return [(f"{VENDORS[i % 3][0]}{i // 3 + 1}", VENDORS[i % 3][0]) for i in range(count)]


async def _runs(emulator: Any, legs: list[tuple[str, str]]) -> Any:
    from llmmixer.orchestrator.config import Config, ServerSpec, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    builtin = default_servers()
    servers = {name: ServerSpec(name=name, source=name, command=builtin[source].command,
                                args=list(builtin[source].args), passthrough=builtin[source].passthrough)
               for name, source in legs}
    runs = Runs(Config(servers=servers, settings=Settings(models=[name for name, _ in legs])), open_store("memory"))
    await runs.__aenter__()
    await runs.pool.check()
    return runs


def _router(emulator: Any, legs: list[tuple[str, str]]) -> Any:
    from litellm import Router

    model_list = [{"model_name": name, "litellm_params": {**_litellm_model(source, emulator.env), "api_key": "bench"}}
                  for name, source in legs]
    return Router(model_list=model_list, num_retries=0)


async def _ours_call(runs: Any, models: str, mode: str = "race") -> tuple[dict[str, Any], list[Any], float]:
    started = time.time()
    run_id = await runs.start_ask(PROMPT, models=models, mode=mode)
    await runs.wait(run_id, 120)
    await runs.flush()
    return await runs.snapshot(run_id), await runs.store.read_after(None, 100_000, run=run_id), started


async def _peer_stream(params: dict[str, Any]) -> tuple[float, float]:
    """LiteLLM's streamed call: (ttft ms, total ms)."""
    import litellm

    started = time.perf_counter()
    first = None
    response = await litellm.acompletion(**params, api_key="bench", num_retries=0, stream=True,
                                         messages=[{"role": "user", "content": PROMPT}])
    async for chunk in response:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    ended = time.perf_counter()
    return ((first or ended) - started) * 1000, (ended - started) * 1000


async def bench_single(emulator: Any, runs: Any, n: int) -> list[dict[str, Any]]:
    emulator.reset()
    emulator.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, tokens=20)
    params = _litellm_model("claude", emulator.env)
    ours_ttft, ours_total, peer_ttft, peer_total = [], [], [], []
    for _ in range(n):
        _, events, started = await _ours_call(runs, "claude1")
        first = next(e.ts for e in events if e.type == "leg.first_token")
        done = next(e.ts for e in events if e.type == "leg.done")
        ours_ttft.append((first - started) * 1000)
        ours_total.append((done - started) * 1000)
        ttft, total = await _peer_stream(params)
        peer_ttft.append(ttft)
        peer_total.append(total)
    return [
        row("peers: one streamed call, TTFT p50", percentile(ours_ttft, 50), percentile(peer_ttft, 50),
            "≤ LiteLLM", unit="ms", passed=percentile(ours_ttft, 50) <= percentile(peer_ttft, 50) * 1.05,
            note=f"p95 {percentile(ours_ttft, 95):.1f} vs {percentile(peer_ttft, 95):.1f} ms; emulated TTFT 50 ms"),
        row("peers: one streamed call, total p50", percentile(ours_total, 50), percentile(peer_total, 50),
            "≤ LiteLLM", unit="ms", passed=percentile(ours_total, 50) <= percentile(peer_total, 50) * 1.05,
            note=f"20 tokens at 5 ms; p95 {percentile(ours_total, 95):.1f} vs {percentile(peer_total, 95):.1f} ms"),
    ]


async def bench_concurrency(emulator: Any, runs: Any, levels: tuple[int, ...], samples: int) -> list[dict[str, Any]]:
    emulator.reset()
    emulator.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, tokens=20)
    params = _litellm_model("claude", emulator.env)
    rows = []

    failures = {"ours": 0, "peer": 0}

    async def burst(call: Any, level: int, side: str) -> list[float]:
        out: list[float] = []

        async def one() -> None:
            started = time.perf_counter()
            try:
                outcome = await call()
            except Exception:  # noqa: BLE001 - a failed call is counted and shown, never timed
                failures[side] += 1
                return
            if isinstance(outcome, tuple) and isinstance(outcome[0], dict) and outcome[0].get("status") != "done":
                failures[side] += 1  # our run ended in an error: counted, not timed
                return
            out.append((time.perf_counter() - started) * 1000)

        async with anyio.create_task_group() as tg:
            for _ in range(level):
                tg.start_soon(one)
        return out

    for level in levels:
        ours: list[float] = []
        peer: list[float] = []
        failures.update(ours=0, peer=0)
        for _ in range(max(1, samples // level)):
            ours += await burst(lambda: _ours_call(runs, "claude1"), level, "ours")
            peer += await burst(lambda: _peer_stream(params), level, "peer")
        failed = f"; failed calls {failures['ours']} vs {failures['peer']}" if any(failures.values()) else ""
        rows.append(row(f"peers: {level} concurrent calls, total p50", percentile(ours, 50), percentile(peer, 50),
                        "≤ LiteLLM", unit="ms", passed=percentile(ours, 50) <= percentile(peer, 50) * 1.05,
                        note=f"p95 {percentile(ours, 95):.0f} vs {percentile(peer, 95):.0f} ms; "
                             f"{len(ours)} vs {len(peer)} calls{failed}"))
    return rows


def _queue_race(emulator: Any, legs: list[tuple[str, str]], rank: list[int]) -> None:
    """Queue one behaviour per leg: leg ``rank[0]`` is the fastest; every loser still streams when it is decided."""
    by_vendor: dict[str, list[dict[str, Any]]] = {}
    for position, index in enumerate(rank):
        vendor = dict(VENDORS)[legs[index][1]]
        by_vendor.setdefault(vendor, []).append(
            {"ttft_ms": 40 + 60 * position, "inter_token_ms": 10, "tokens": 20})
    for vendor, behaviours in by_vendor.items():
        emulator.queue(vendor, *behaviours)


#: How long after the decision each side's losers have to close their upstream, the same for both.
CLOSE_GRACE_S = 2.0


async def _loser_closes(emulator: Any, before: set[str], decided_at: float, losers: int
                        ) -> tuple[list[float], int, int]:
    """Every loser's close, in ms after the decision; how many losers streamed to their end instead; and how many
    never reached the vendor (cancelled before their request went out: nothing to close).

    Waits until every call of the race has ended (closed, completed or failed) or until :data:`CLOSE_GRACE_S`
    after the decision. A loser whose call is still open then counts as closed at the grace, so no loser is left
    out; one with no call at the vendor by then counts as closed at once (0 ms), and is counted apart too.
    """
    deadline = decided_at + CLOSE_GRACE_S
    while True:
        calls = [r for r in emulator.requests() if r["id"] not in before and r["method"] == "POST"]
        if (len(calls) > losers and all(r["outcome"] != "open" for r in calls)) or time.time() >= deadline:
            break
        await anyio.sleep(0.01)
    closes = [(r["closed_at"] - decided_at) * 1000 for r in calls if r["outcome"] == "client_closed"]
    completed = sum(1 for r in calls if r["outcome"] == "completed")
    streamed_to_end = max(0, completed - 1)  # the winner completes; any other completed call was a loser
    still_open = sum(1 for r in calls if r["outcome"] == "open")
    never_sent = max(0, losers + 1 - len(calls))  # every leg's call, the winner's included, or none
    return (closes + [CLOSE_GRACE_S * 1000] * still_open + [0.0] * never_sent, streamed_to_end, never_sent)


async def bench_race(emulator: Any, size: int, n: int) -> list[dict[str, Any]]:
    import random

    legs = _legs(size)
    runs = await _runs(emulator, legs)
    router = _router(emulator, legs)
    names = ",".join(name for name, _ in legs)
    rng = random.Random(size)
    ours_latency, peer_latency, ours_close, peer_close = [], [], [], []
    streamed = {"ours": 0, "peer": 0}
    unsent = {"ours": 0, "peer": 0}
    try:
        await _ours_call(runs, names, mode="all")  # warm every session: each leg to its end, its SDK loaded
        for _ in range(n):
            rank = list(range(size))
            rng.shuffle(rank)
            emulator.reset()
            _queue_race(emulator, legs, rank)
            before = {r["id"] for r in emulator.requests()}
            result, events, started = await _ours_call(runs, names)
            decided = next(e.ts for e in events if e.type == "leg.done" and e.source == result["winner"])
            ours_latency.append((decided - started) * 1000)
            closes, to_end, never = await _loser_closes(emulator, before, decided, size - 1)
            ours_close += closes
            streamed["ours"] += to_end
            unsent["ours"] += never

            emulator.reset()
            _queue_race(emulator, legs, rank)
            started = time.time()
            await router.abatch_completion_fastest_response(model=names, messages=[{"role": "user", "content": PROMPT}])
            decided = time.time()
            peer_latency.append((decided - started) * 1000)
            closes, to_end, never = await _loser_closes(emulator, set(), decided, size - 1)
            peer_close += closes
            streamed["peer"] += to_end
            unsent["peer"] += never
    finally:
        await runs.__aexit__(None, None, None)
    rows = [row(f"peers: race of {size}, latency p50", percentile(ours_latency, 50), percentile(peer_latency, 50),
                "≤ LiteLLM", unit="ms", passed=percentile(ours_latency, 50) <= percentile(peer_latency, 50) * 1.05)]
    if ours_close and peer_close:
        for q in (50, 95):
            rows.append(row(f"peers: race of {size}, loser close p{q}", percentile(ours_close, q),
                            percentile(peer_close, q), "≤ LiteLLM", unit="ms",
                            passed=percentile(ours_close, q) <= percentile(peer_close, q),
                            note=f"every loser: {len(ours_close)} vs {len(peer_close)} closes, of which "
                                 f"{unsent['ours']} vs {unsent['peer']} never reached the vendor"))
    rows.append(row(f"peers: race of {size}, losers that streamed to the end", streamed["ours"], streamed["peer"],
                    "0", unit="legs", passed=streamed["ours"] == 0, ratio=None,
                    note=f"of {n * (size - 1)} losers per side"))
    return rows


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    try:
        import litellm  # noqa: F401
    except ImportError:
        return [row("peers: LiteLLM not installed", None, None, "pip install -e '.[bench-peers]'", passed=None)]
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of its price map from the network
    rows: list[dict[str, Any]] = []
    with emulator_process() as emulator:
        os.environ.update({**emulator.env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench",
                           "GEMINI_API_KEY": "bench", "LLMMIXER_MAX_RETRIES": "0"})
        runs = await _runs(emulator, _legs(1))
        try:
            await _ours_call(runs, "claude1")
            await _peer_stream(_litellm_model("claude", emulator.env))
            rows += await bench_single(emulator, runs, 10 if quick else 50)
            rows += await bench_concurrency(emulator, runs, (1, 10) if quick else (1, 10, 50), 20 if quick else 100)
        finally:
            await runs.__aexit__(None, None, None)
        for size in ((3,) if quick else (3, 6, 12)):
            rows += await bench_race(emulator, size, 5 if quick else 20)
        for size in (3, 12):
            rows += race_memory_rows(size)  # inside: each side's process reaches the emulator through the env
    from .gateway_bench import peer_rows

    rows += await peer_rows(quick)  # the gateway's TTFT overhead beside LiteLLM's proxy
    return rows


def race_memory_rows(size: int) -> list[dict[str, Any]]:
    """RSS after one race of ``size`` legs, each side in a fresh process (:mod:`bench.race_memory`); reported."""
    import json
    import subprocess
    import sys

    def measure(side: str) -> float:
        done = subprocess.run([sys.executable, "-m", "bench.race_memory", side, str(size)], capture_output=True,
                              text=True, timeout=600, env=os.environ.copy())
        if done.returncode != 0:
            raise RuntimeError(f"race_memory {side} {size}: {done.stderr[-500:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["rss_mib"])

    peer = measure("litellm")
    return [row(f"peers: memory of a race of {size}, ours {side} vs LiteLLM", measure(side), peer, "reported",
                unit="MiB") for side in ("processes", "inprocess")]
