"""P4: the SSE event stream — fan-out throughput, replay, memory — each figure beside a baseline from the same run.

Figures (rows ``{figure, ours, baseline, ratio, goal, passed}``):

- **fan-out** (:mod:`bench.sse_fanout`): ours beside two baselines, a bare Starlette stream that batches the same
  way and the idiomatic sse-starlette fan-out, under a burst and a paced pattern at 10, 100 and 500 clients.
- **runs under readers** (:mod:`bench.sse_load`): a run's latency with 500 SSE readers connected vs none.
- **replay**: one client resuming from the first id of a 10,000-event store: time to receive all of it, and the
  server's peak RSS, beside the bare response sending the same 10,000 pre-rendered events.
- **memory per client**: server RSS growth per idle open ``/events`` connection (100 of them) beside the bare
  response's.
- **RSS flat**: the memory store's RSS after 10% and after 100% of 1,000,000 events (100,000 with ``--quick``)
  pass through it with a live subscriber; goal within +-10%.

Each server runs in its own process (``python -m bench.sse_bench --serve ours|bare``) so the clients, which are
the same code for both, never share a GIL with the server being measured. The server process takes one-line
commands on stdin (``publish N``, ``fill N``, ``clients``, ``rss``) and answers on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2

from .command_server import CommandServer

__all__ = ["run_bench", "main"]

EVENT_TEXT = "tok "  # a typical streamed delta


def _event(i: int) -> Any:
    from llmmixer.servers.core.events import Event

    return Event(run="bench-run", source="claude", type="delta", data={"text": EVENT_TEXT, "i": i})


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- the server process ------------------------------------------------------------------------------------------


class _Bare:
    """The baseline: a bare Starlette StreamingResponse writing pre-rendered events (no store, no encoding)."""

    def __init__(self) -> None:
        self.open = 0
        self.rendered: list[bytes] = []
        self.release = anyio.Event()
        self.batch: list[bytes] = []

    def render(self, count: int, start: int = 1) -> list[bytes]:
        return [f"id: {i}\nevent: delta\ndata: {_event(i).with_id(i).to_json()}\n\n".encode()
                for i in range(start, start + count)]

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import StreamingResponse
        from starlette.routing import Route

        async def stream(request: Request) -> StreamingResponse:
            replay = request.query_params.get("replay") == "1"

            async def body() -> AsyncIterator[bytes]:
                self.open += 1
                try:
                    yield b"retry: 1000\n\n"
                    if replay:
                        for chunk in self.rendered:
                            yield chunk
                        return
                    while True:
                        # publish() swaps in a fresh event before setting this one, so the next wait is fresh.
                        await self.release.wait()
                        for chunk in self.batch:
                            yield chunk
                finally:
                    self.open -= 1

            return StreamingResponse(body(), media_type="text/event-stream")

        return Starlette(routes=[Route("/events", stream)])

    async def publish(self, count: int) -> None:
        self.batch = self.render(count)
        old, self.release = self.release, anyio.Event()
        old.set()

    async def fill(self, count: int) -> None:
        self.rendered = self.render(count)


async def _serve(kind: str) -> None:
    from llmmixer.orchestrator.web.app import create_app, running

    bare = _Bare()
    if kind == "bare":
        app = bare.app()
    else:
        from llmmixer.orchestrator.stores import open_store
        from llmmixer.orchestrator.web.__main__ import NoRuns

        app = create_app(NoRuns(), open_store("memory"))
    async with running(app) as url:
        print(f"READY {url}", flush=True)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            command, _, arg = line.strip().partition(" ")
            if command == "publish":
                if kind == "bare":
                    await bare.publish(int(arg))
                else:
                    await _append(app.state.store, int(arg))
                print("OK", flush=True)
            elif command == "fill":
                if kind == "bare":
                    await bare.fill(int(arg))
                    print("OK 1", flush=True)
                else:
                    first = await _append(app.state.store, int(arg))
                    print(f"OK {first}", flush=True)
            elif command == "clients":
                # Ours: streams subscribed to live events (a stream subscribes when its body starts).
                count = bare.open if kind == "bare" else app.state.hub.subscriber_count
                print(f"OK {count}", flush=True)
            elif command == "rss":
                gc.collect()
                print(f"OK {_rss()} {_peak_rss()}", flush=True)
            elif command == "quit":
                print("OK", flush=True)
                return


async def _append(store: Any, count: int) -> str:
    """Append ``count`` events; returns the first one's id. Yields to the loop now and then, as a producer would."""
    first = ""
    for i in range(count):
        stored = await store.append(_event(i))
        first = first or str(stored.id)
        if i % 64 == 63:
            await anyio.sleep(0)
    return first


# ---- the client side ---------------------------------------------------------------------------------------------


async def _read_events(client: httpx2.AsyncClient, path: str, expected: int, headers: dict[str, str],
                       done: list[float]) -> None:
    """Count ``data:`` lines until ``expected`` arrived; record the time."""
    seen = 0
    tail = b""
    async with client.stream("GET", path, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            buf = tail + chunk
            seen += buf.count(b"\ndata:") - tail.count(b"\ndata:")
            tail = buf[-5:]
            if seen >= expected:
                done.append(time.perf_counter())
                return


async def _wait_clients(server: CommandServer, count: int) -> None:
    with anyio.fail_after(30):
        while int((await server.ask("clients"))[0]) < count:
            await anyio.sleep(0.02)


async def _replay(kind: str, events: int) -> tuple[float, int]:
    """Seconds to receive ``events`` stored events from the start, and the server's peak RSS."""
    server = CommandServer("bench.sse_bench", kind, close_timeout_s=5.0)
    try:
        first = (await server.ask(f"fill {events}"))[0]
        async with httpx2.AsyncClient(base_url=server.url, timeout=60) as client:
            done: list[float] = []
            if kind == "bare":
                path, headers = "/events?replay=1", {}
            else:
                # Everything strictly after the id before the first: ask from the first and count one less.
                path, headers = "/events", {"Last-Event-ID": first}
                events -= 1
            started = time.perf_counter()
            with anyio.fail_after(120):
                await _read_events(client, path, events, headers, done)
            elapsed = done[0] - started
        peak = int((await server.ask("rss"))[1])
        return elapsed, peak
    finally:
        server.close()


async def _memory_per_client(kind: str, clients: int) -> float:
    """Server RSS growth per idle open event stream, in KiB."""
    server = CommandServer("bench.sse_bench", kind, close_timeout_s=5.0)
    try:
        before = int((await server.ask("rss"))[0])
        limits = httpx2.Limits(max_connections=clients + 10)
        async with httpx2.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(clients):
                    tg.start_soon(_read_events, client, "/events", 1, {}, [])
                await _wait_clients(server, clients)
                after = int((await server.ask("rss"))[0])
                tg.cancel_scope.cancel()
        return (after - before) / clients / 1024
    finally:
        server.close()


async def _rss_flat(events: int) -> tuple[int, int]:
    """RSS after 10% and after 100% of ``events`` pass through the memory store with a live subscriber (the same
    hub and subscription an SSE client gets)."""
    from llmmixer.orchestrator.stores import open_store
    from llmmixer.orchestrator.web.fanout import EventHub

    store = open_store("memory")
    hub = EventHub(store)
    received = 0
    warm = events // 10
    marks: dict[str, int] = {}
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        sub = hub.subscribe()

        async def subscriber() -> None:
            nonlocal received
            while items := await sub.get():
                received += len(items)

        tg.start_soon(subscriber)
        for i in range(events):
            await store.append(_event(i))
            if i % 256 == 255:
                await anyio.sleep(0)
            if i + 1 == warm:
                gc.collect()
                marks["warm"] = _rss()
        while received < events:
            await anyio.sleep(0.01)
        gc.collect()
        marks["end"] = _rss()
        tg.cancel_scope.cancel()
    return marks["warm"], marks["end"]


def _row(figure: str, ours: float | None, baseline: float | None, goal: str, passed: bool | None,
         unit: str = "", note: str = "", ratio: float | None = None) -> dict[str, Any]:
    if ratio is None and ours is not None and baseline:
        ratio = ours / baseline
    return {"figure": figure, "ours": ours, "baseline": baseline, "ratio": ratio, "goal": goal, "passed": passed,
            "unit": unit, "note": note}


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    events = 2_000 if quick else 10_000
    rows: list[dict[str, Any]] = []

    from .sse_fanout import run_fanout
    from .sse_load import run_latency_under_readers

    rows += await run_fanout(quick)
    load = await run_latency_under_readers(readers=500, concurrency=20, rounds=1 if quick else 3)
    rows.append(_row("P4 run latency with 500 SSE readers vs none (20 concurrent runs)", load["loaded_ms"],
                     load["alone_ms"], "<= 1.5x", load["ratio"] <= 1.5, unit="ms",
                     note="median run latency; readers are raw sockets in the bench process"))

    replay_n = 10_000
    ours_s, ours_peak = await _replay("ours", replay_n)
    bare_s, bare_peak = await _replay("bare", replay_n)
    rows.append(_row(f"P4 replay of {replay_n:,} events", ours_s * 1000, bare_s * 1000, "", None, unit="ms"))
    rows.append(_row("P4 replay peak server RSS", ours_peak / 2**20, bare_peak / 2**20, "", None, unit="MiB"))

    ours_kib = await _memory_per_client("ours", 100)
    bare_kib = await _memory_per_client("bare", 100)
    rows.append(_row("P4 memory per open SSE client", ours_kib, bare_kib, "", None, unit="KiB"))

    flat_n = 100_000 if quick else 1_000_000
    warm, end = await _rss_flat(flat_n)
    drift = (end - warm) / warm
    rows.append(_row(f"P4 RSS across {flat_n:,} events (memory store)", end / 2**20, warm / 2**20,
                     "within +-10% of RSS at 10%", abs(drift) <= 0.10, unit="MiB",
                     note=f"drift {drift * 100:+.1f}%"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", choices=("ours", "bare", "runs"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "runs":
        from .sse_load import serve_runs

        anyio.run(serve_runs)
        return 0
    if args.serve:
        anyio.run(_serve, args.serve)
        return 0
    for row in anyio.run(run_bench, args.quick):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
