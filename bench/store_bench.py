"""Event stores: memory over months of runs (RSS), the writer's spool on the normal path, and group commit.

- RSS after 10,000 runs vs after 1,000 (goal <= 1.1x), memory and sqlite stores: a fresh process per store runs
  one-model asks through the real adapter server (stdio) against the emulators, and reads its own VmRSS after a
  ``gc.collect()`` at each mark. Runs are finished and read back from the store, as a long-lived server's are.
- Spool overhead on the normal path (goal <= 1.05x): the same events through :class:`StoreWriter` (spool, group
  commit) and through the writer it replaced (a memory stream and one ``append`` per event), memory store,
  interleaved rounds, best round each.
- 50 concurrent asks, p50, sqlite and redis vs memory (goal within 1.2x): one Runs per store in this process,
  rounds interleaved, on the emulators.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import anyio

from .emulator import emulator_process
from .stats import percentile, row

REDIS = "redis://127.0.0.1:6379/0"


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _env(emulator_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **emulator_env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench",
            "GEMINI_API_KEY": "bench", "LLMMIXER_MAX_RETRIES": "0"}


async def _rss_child(store_url: str, first: int, second: int, concurrency: int) -> dict[str, float]:
    """In a process of its own: RSS after ``first`` and after ``second`` runs."""
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    runs = Runs(Config(servers=default_servers(), settings=Settings()), open_store(store_url))
    marks: dict[str, float] = {}
    async with runs:
        done = 0

        async def worker(count: int) -> None:
            nonlocal done
            for _ in range(count):
                run_id = await runs.start_ask("bench prompt", models="claude", mode="race")
                await runs.wait(run_id, 120)
                await runs.snapshot(run_id)
                done += 1

        for target in (first, second):
            todo = target - done
            async with anyio.create_task_group() as tg:
                for w in range(concurrency):
                    tg.start_soon(worker, todo // concurrency + (1 if w < todo % concurrency else 0))
            await runs.flush()
            gc.collect()
            marks[str(target)] = rss_mib()
        marks["held_runs"] = float(len(runs._runs))
    return marks


def bench_rss(emulator: Any, kind: str, first: int, second: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stores-bench-") as tmp:
        url = "memory" if kind == "memory" else f"sqlite:///{tmp}/events.db"
        emulator.reset()
        emulator.set_behaviour("anthropic", tokens=8)
        done = subprocess.run([sys.executable, "-m", "bench.store_bench", "rss", url, str(first), str(second)],
                              capture_output=True, text=True, env=_env(emulator.env), timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"rss child failed: {done.stderr[-2000:]}")
        marks = json.loads(done.stdout.strip().splitlines()[-1])
    return row(f"RSS after {second:,} runs vs after {first:,} ({kind})", marks[str(second)], marks[str(first)],
               "<= 1.1x", unit="MiB", passed=marks[str(second)] <= 1.1 * marks[str(first)],
               note=f"{int(marks['held_runs'])} runs held in memory at the end")


async def bench_spool(n: int, rounds: int) -> dict[str, Any]:
    from llmmixer.orchestrator.stores import MemoryStore, StoreWriter
    from llmmixer.servers.core.events import Event

    events = [Event(run=f"run-{i % 20}", source="claude", type="delta", data={"text": f"token {i} "})
              for i in range(n)]

    async def spooled() -> float:
        store = MemoryStore(maxlen=n + 1)
        writer = StoreWriter(store)
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            started = time.perf_counter()
            for i, event in enumerate(events):
                writer.submit(event)
                if i % 50 == 49:
                    await anyio.sleep(0)  # producers yield now and then, as a live run does
            await writer.flush()
            elapsed = time.perf_counter() - started
            await writer.aclose()
        return elapsed

    async def direct() -> float:
        store = MemoryStore(maxlen=n + 1)
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        written = 0
        all_written = anyio.Event()

        async def write() -> None:
            nonlocal written
            async with receive:
                async for event in receive:
                    try:
                        await store.append(event)
                    except Exception:  # noqa: BLE001 - as the replaced writer did
                        pass
                    written += 1
                    if written == n:
                        all_written.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            started = time.perf_counter()
            for i, event in enumerate(events):
                send.send_nowait(event)
                if i % 50 == 49:
                    await anyio.sleep(0)
            await all_written.wait()
            elapsed = time.perf_counter() - started
            send.close()
        return elapsed

    ours, base = [], []
    for _ in range(rounds):
        ours.append(await spooled())
        base.append(await direct())
    best_ours, best_base = min(ours), min(base)
    return row(f"spool + group commit, {n:,} events, memory store (normal path)", best_ours * 1000,
               best_base * 1000, "<= 1.05x", unit="ms", passed=best_ours <= 1.05 * best_base,
               note="baseline: the replaced writer, one append per event")


async def bench_concurrent(emulator: Any, n: int, rounds: int) -> list[dict[str, Any]]:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    os.environ.update(_env(emulator.env))
    emulator.reset()
    emulator.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, tokens=20)
    urls = {"memory": "memory"}
    tmp = tempfile.TemporaryDirectory(prefix="stores-bench-")
    urls["sqlite"] = f"sqlite:///{tmp.name}/events.db"
    stream = f"llmmixer-bench:{uuid.uuid4().hex}"
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
        urls["redis"] = f"{REDIS}?stream={stream}"
    except Exception:  # noqa: BLE001 - no Redis here: that row says so
        pass
    latencies: dict[str, list[float]] = {kind: [] for kind in urls}

    async def one(runs: Any, out: list[float]) -> None:
        started = time.perf_counter()
        rid = await runs.start_ask("bench prompt", models="claude", mode="race")
        await runs.wait(rid, 120)  # the run ends once its run.done is in the store
        out.append((time.perf_counter() - started) * 1000)

    try:
        async with contextlib.AsyncExitStack() as stack:
            services = {}
            for kind, url in urls.items():
                runs = await stack.enter_async_context(
                    Runs(Config(servers=default_servers(), settings=Settings()), open_store(url)))
                await runs.pool.check()
                for _ in range(3):  # warm: the adapter's SDK and connections
                    rid = await runs.start_ask("warm", models="claude", mode="race")
                    await runs.wait(rid, 60)
                services[kind] = runs
            for _ in range(rounds):
                for kind, runs in services.items():
                    async with anyio.create_task_group() as tg:
                        for _ in range(n):
                            tg.start_soon(one, runs, latencies[kind])
    finally:
        tmp.cleanup()
        if "redis" in urls:
            import redis

            client = redis.Redis.from_url(REDIS)
            client.delete(stream, *client.keys(f"{stream}:*"))
    memory_p50 = percentile(latencies["memory"], 50)
    rows = []
    for kind in ("sqlite", "redis"):
        if kind not in latencies:
            rows.append(row(f"{n} concurrent asks p50, {kind} vs memory", None, memory_p50, "<= 1.2x",
                            note="no redis-server on 127.0.0.1:6379"))
            continue
        p50 = percentile(latencies[kind], 50)
        rows.append(row(f"{n} concurrent asks p50, {kind} vs memory store", p50, percentile(latencies["memory"], 50),
                        "<= 1.2x", unit="ms", passed=p50 <= 1.2 * percentile(latencies["memory"], 50),
                        note=f"{rounds} interleaved rounds"))
    return rows


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rows.append(await bench_spool(20_000 if quick else 100_000, 3 if quick else 7))
    with emulator_process() as emulator:
        rows += await bench_concurrent(emulator, 50, 2 if quick else 5)
        first, second = (100, 1_000) if quick else (1_000, 10_000)
        for kind in ("memory", "sqlite"):
            rows.append(await anyio.to_thread.run_sync(bench_rss, emulator, kind, first, second))
    return rows


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "rss":
    result = anyio.run(_rss_child, sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), 8)
    print(json.dumps(result))
