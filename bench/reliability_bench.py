"""Durability and memory under load (issue 24).

- SQLite ``synchronous=FULL`` vs ``NORMAL``, measured side by side in one run on the same disk:
  - events/s through the real writer (spool + group commit): 50 runs streaming 200 deltas each at once;
  - events/s with one commit per event (the worst case for FULL: every event its own fsync);
  - 50 concurrent asks p50 through the real adapter server (stdio) and the emulators.
- ``llmmixer serve`` RSS over 500 runs with 1 MB outputs (the console script in a subprocess, its VmRSS printed
  after every 50 runs): a plateau is growth under 10% over the second half, RSS(500) <= 1.1x RSS(250).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from .emulator import emulator_process
from .stats import percentile, row
from .store_bench import _env

MODES = ("FULL", "NORMAL")


async def _writer_rate(path: str, mode: str, runs: int, deltas: int) -> float:
    from llmmixer.orchestrator.stores import SqliteStore, StoreWriter
    from llmmixer.servers.core.events import Event

    store = SqliteStore(path, synchronous=mode)
    async with store:
        writer = StoreWriter(store)
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            started = time.perf_counter()

            async def run(r: int) -> None:
                for i in range(deltas):
                    writer.submit(Event(run=f"run-{r}", source="claude", type="delta", data={"text": f"tok{i} "}))
                    await anyio.sleep(0)  # a delta at a time, as a streaming leg emits them

            async with anyio.create_task_group() as producers:
                for r in range(runs):
                    producers.start_soon(run, r)
            assert await writer.flush()
            elapsed = time.perf_counter() - started
            await writer.aclose()
    return runs * deltas / elapsed


async def _commit_rate(path: str, mode: str, n: int) -> float:
    from llmmixer.orchestrator.stores import SqliteStore
    from llmmixer.servers.core.events import Event

    async with SqliteStore(path, synchronous=mode) as store:
        started = time.perf_counter()
        for i in range(n):
            await store.append(Event(run="run", source="claude", type="delta", data={"text": f"tok{i} "}))
        return n / (time.perf_counter() - started)


async def bench_events(tmp: str, quick: bool) -> list[dict[str, Any]]:
    rounds = 2 if quick else 4
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    commits: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in MODES:
            rates[mode].append(await _writer_rate(f"{tmp}/w-{mode}-{r}.db", mode, 50, 200))
            commits[mode].append(await _commit_rate(f"{tmp}/c-{mode}-{r}.db", mode, 300 if quick else 1000))
    full, normal = max(rates["FULL"]), max(rates["NORMAL"])
    one_full, one_normal = max(commits["FULL"]), max(commits["NORMAL"])
    return [
        row("SQLite events/s through the writer, 50 runs x 200 deltas, FULL vs NORMAL", full, normal, ">= 0.8x",
            unit="events/s", passed=full >= 0.8 * normal, note=f"best of {rounds} interleaved rounds; "
                                                              "ratio = FULL/NORMAL"),
        row("SQLite events/s, one commit per event, FULL vs NORMAL", one_full, one_normal, "(worst case)",
            unit="events/s", passed=None, note="each event its own transaction: every FULL commit waits for fsync"),
    ]


async def bench_asks(emulator: Any, tmp: str, n: int, rounds: int) -> dict[str, Any]:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    os.environ.update(_env(emulator.env))
    emulator.reset()
    emulator.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, tokens=20)
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}

    async def one(runs: Any, out: list[float]) -> None:
        started = time.perf_counter()
        rid = await runs.start_ask("bench prompt", models="claude", mode="race")
        await runs.wait(rid, 120)  # ends once its run.done is in the store
        out.append((time.perf_counter() - started) * 1000)

    import contextlib

    async with contextlib.AsyncExitStack() as stack:
        services = {}
        for mode in MODES:
            url = f"sqlite:///{tmp}/asks-{mode}.db?synchronous={mode.lower()}"
            runs = await stack.enter_async_context(
                Runs(Config(servers=default_servers(), settings=Settings()), open_store(url)))
            for _ in range(3):
                rid = await runs.start_ask("warm", models="claude", mode="race")
                await runs.wait(rid, 60)
            services[mode] = runs
        for _ in range(rounds):
            for mode, runs in services.items():
                async with anyio.create_task_group() as tg:
                    for _ in range(n):
                        tg.start_soon(one, runs, latencies[mode])
    full, normal = percentile(latencies["FULL"], 50), percentile(latencies["NORMAL"], 50)
    return row(f"{n} concurrent asks p50, SQLite FULL vs NORMAL", full, normal, "<= 1.1x", unit="ms",
               passed=full <= 1.1 * normal, note=f"{rounds} interleaved rounds")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def bench_serve_rss(emulator: Any, tmp: str, total: int, step: int) -> dict[str, Any]:
    import httpx2

    from llmmixer.servers.emulators.server import free_port

    emulator.reset()
    reply = ("0123456789abcdef" * 64 + "\n") * 1000  # about 1 MB
    emulator.set_behaviour("anthropic", reply=reply, tokens=50)  # 20 KB deltas: 500 runs in minutes, not an hour
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**_env(emulator.env), "LLMMIXER_TOKEN": token}
    llmmixer = str(Path(sys.executable).parent / "llmmixer")
    log = open(os.environ.get("BENCH_SERVE_LOG") or f"{tmp}/serve.log", "w")
    proc = subprocess.Popen([llmmixer, "serve", "--port", str(port), "--store", f"sqlite:///{tmp}/serve.db"],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
    marks: dict[int, float] = {}
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                      headers={"Authorization": f"Bearer {token}"}) as client:
            with anyio.fail_after(60):
                while True:
                    try:
                        await client.get("/healthz")
                        break
                    except httpx2.TransportError:
                        await anyio.sleep(0.1)

            async def one() -> None:
                started = await client.post("/api/runs", json={"prompt": "a long one", "models": ["claude"],
                                                                "mode": "all"})
                run_id = started.json()["run_id"]
                while (await client.get(f"/api/runs/{run_id}?wait_s=30")).json().get("status") == "running":
                    await anyio.sleep(0.05)

            limiter = anyio.CapacityLimiter(8)  # 8 runs at once, as a busy user's tools would

            async def limited() -> None:
                async with limiter:
                    await one()

            done = 0
            while done < total:
                async with anyio.create_task_group() as tg:
                    for _ in range(step):
                        tg.start_soon(limited)
                done += step
                marks[done] = _rss_mib(proc.pid)
                print(f"[reliability] serve RSS after {done} runs: {marks[done]:.1f} MiB", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    half, last = marks[total // 2], marks[total]
    plateau = last <= 1.1 * half
    print(f"[reliability] serve RSS {'plateaus' if plateau else 'still grows'}: {half:.1f} MiB after {total // 2} "
          f"runs, {last:.1f} MiB after {total} ({(last / half - 1) * 100:+.1f}% over the second half)",
          file=sys.stderr, flush=True)
    return row(f"serve RSS after {total} runs of 1 MB vs after {total // 2}", last, half, "<= 1.1x", unit="MiB",
               passed=plateau,
               note=f"after each {step}: " + ", ".join(f"{v:.0f}" for v in marks.values()) + " MiB")


async def _part(rows: list[dict[str, Any]], name: str, part: Any) -> None:
    """One figure's rows; a figure that fails is a row saying so, and the others still run."""
    try:
        got = await part
        rows.extend(got if isinstance(got, list) else [got])
    except Exception as exc:  # noqa: BLE001 - a broken figure must not hide the others
        rows.append(row(f"{name}: failed", None, None, "", passed=False, note=f"{type(exc).__name__}: {exc}"[:300]))


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="reliability-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        parts = os.environ.get("BENCH_PARTS", "events,asks,rss").split(",")
        if "events" in parts:
            await _part(rows, "SQLite events/s", bench_events(tmp, quick))
        with emulator_process() as emulator:
            if "asks" in parts:
                await _part(rows, "50 concurrent asks", bench_asks(emulator, tmp, 50, 2 if quick else 4))
            if "rss" in parts:
                await _part(rows, "serve RSS", bench_serve_rss(emulator, tmp, 100 if quick else 500, 50))
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(anyio.run(run_bench, "--quick" in sys.argv), indent=1))
