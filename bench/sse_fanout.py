"""SSE fan-out against two fair baselines (issue 16, item 2), under a burst and a paced pattern, at 10/100/500 clients.

- **ours**: ``GET /events`` of the web app over the memory store (store -> hub -> shared batch -> every stream).
- **bare**: a bare Starlette ``StreamingResponse`` that batches the same way: each event rendered once, and on
  each wake-up a client writes everything new in one chunk. This is our implementation's floor: the cost of
  the web app, the store and the hub above it.
- **sse-starlette**: the idiomatic fan-out a user would write: a queue per client, the publisher puts each event
  in every queue, and each client's ``EventSourceResponse`` yields one ``ServerSentEvent`` per event.

Patterns: **burst**, N events published at once (figure: events/s delivered to all clients); **paced**, events
published one at a time at a steady rate, as tokens of live runs arrive (figure: the server's CPU milliseconds
per 1,000 events delivered). Each server runs in its own process; the clients are raw sockets in this one, which
only count ``data:`` lines, so the figures are the servers' costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .command_server import CommandServer

__all__ = ["run_fanout", "KINDS"]

KINDS = ("ours", "bare", "sse-starlette")


def _event(i: int) -> Any:
    from llmmixer.servers.core.events import Event

    # "t": when it was published, on the machine-wide monotonic clock, so a reader process can tell its latency.
    return Event(run="bench-run", source="claude", type="delta", data={"text": "tok ", "i": i, "t": time.monotonic()})


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Bare:
    """Bare Starlette, batching like ours: events rendered once; a woken client writes all that is new at once."""

    def __init__(self) -> None:
        self.rendered: list[bytes] = []
        self.wake = anyio.Event()
        self.open = 0

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import StreamingResponse
        from starlette.routing import Route

        async def stream(request: Request) -> StreamingResponse:
            async def body() -> AsyncIterator[bytes]:
                self.open += 1
                cursor = len(self.rendered)
                try:
                    yield b"retry: 1000\n\n"
                    while True:
                        if cursor == len(self.rendered):
                            await self.wake.wait()
                        new = self.rendered[cursor:]
                        cursor += len(new)
                        yield new[0] if len(new) == 1 else b"".join(new)
                finally:
                    self.open -= 1

            return StreamingResponse(body(), media_type="text/event-stream")

        return Starlette(routes=[Route("/events", stream)])

    def publish(self, events: list[Any]) -> None:
        start = len(self.rendered) + 1
        self.rendered += [f"id: {start + n}\nevent: delta\ndata: {e.with_id(start + n).to_json()}\n\n".encode()
                          for n, e in enumerate(events)]
        old, self.wake = self.wake, anyio.Event()
        old.set()

    @property
    def clients(self) -> int:
        return self.open


class _Idiomatic:
    """What a user would write with sse-starlette: a queue per client, one ServerSentEvent per event."""

    def __init__(self) -> None:
        self.queues: set[Any] = set()
        self.next_id = 1

    def app(self) -> Any:
        from sse_starlette.event import ServerSentEvent
        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.routing import Route

        async def stream(request: Request) -> EventSourceResponse:
            send, receive = anyio.create_memory_object_stream[Any](10_000)
            self.queues.add(send)

            async def body() -> AsyncIterator[ServerSentEvent]:
                try:
                    async with receive:
                        async for event in receive:
                            yield ServerSentEvent(data=event.to_json(), event=event.type, id=event.id)
                finally:
                    self.queues.discard(send)

            return EventSourceResponse(body())

        return Starlette(routes=[Route("/events", stream)])

    def publish(self, events: list[Any]) -> None:
        for event in events:
            event = event.with_id(self.next_id)
            self.next_id += 1
            for queue in list(self.queues):
                with contextlib.suppress(anyio.WouldBlock):
                    queue.send_nowait(event)

    @property
    def clients(self) -> int:
        return len(self.queues)


async def _serve(kind: str) -> None:
    from llmmixer.orchestrator.web.app import create_app, running

    other: _Bare | _Idiomatic | None = None
    if kind == "ours":
        from llmmixer.orchestrator.stores import open_store
        from llmmixer.orchestrator.web.__main__ import NoRuns

        store = open_store("memory://?maxlen=200000")
        app = create_app(NoRuns(), store, max_queue=1_000_000)
    else:
        other = _Bare() if kind == "bare" else _Idiomatic()
        app = other.app()

    async def publish(count: int) -> None:
        if other is not None:
            other.publish([_event(i) for i in range(count)])
            return
        for i in range(count):
            await store.append(_event(i))

    async with running(app) as url:
        print(f"READY {url}", flush=True)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            command, *args = line.split()
            if command == "burst":
                await publish(int(args[0]))
                print("OK", flush=True)
            elif command == "paced":
                count, rate = int(args[0]), float(args[1])
                started = time.perf_counter()
                for i in range(count):
                    await publish(1)
                    await anyio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
                print("OK", flush=True)
            elif command == "clients":
                print(f"OK {app.state.hub.subscriber_count if other is None else other.clients}", flush=True)
            elif command == "cpu":
                print(f"OK {_cpu_s()}", flush=True)
            elif command == "quit":
                print("OK", flush=True)
                return


async def _reader(server: CommandServer, expected: int, done: list[float]) -> None:
    stream = await anyio.connect_tcp(server.host, server.port)
    async with stream:
        await stream.send(f"GET /events HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode())
        seen, tail = 0, b""
        while seen < expected:
            buf = tail + await stream.receive(262_144)
            seen += buf.count(b"\ndata:") - tail.count(b"\ndata:")
            tail = buf[-6:]
        done.append(time.perf_counter())


_STAMP = re.compile(rb'"t":\s*([0-9.]+)')
PROBES = 20  # readers that time each event (the rest only count, so the client side stays cheap)


async def _probe(server: CommandServer, expected: int, latencies: list[float]) -> None:
    """A reader that notes, for each event, how long after its publish it arrived."""
    stream = await anyio.connect_tcp(server.host, server.port)
    async with stream:
        await stream.send(f"GET /events HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode())
        seen, pending = 0, b""
        while seen < expected:
            pending += await stream.receive(262_144)
            now = time.monotonic()
            cut = pending.rfind(b"\n") + 1  # a data: line is one whole event
            complete, pending = pending[:cut], pending[cut:]
            stamps = [float(t) for t in _STAMP.findall(complete)]
            latencies.extend(now - t for t in stamps)
            seen += len(stamps)


async def measure_latency(kind: str, clients: int, events: int, rate: float) -> tuple[float, float, float]:
    """(p50, p95 delivery latency in ms, events/s delivered) with ``clients`` streams open and events published one
    at a time at ``rate`` per second."""
    from .stats import percentile

    server = CommandServer("bench.sse_fanout", kind, close_timeout_s=10.0)
    try:
        done: list[float] = []
        latencies: list[float] = []
        async with anyio.create_task_group() as tg:
            for n in range(clients):
                if n < PROBES:
                    tg.start_soon(_probe, server, events, latencies)
                else:
                    tg.start_soon(_reader, server, events, done)
            with anyio.fail_after(60):
                while int((await server.ask("clients"))[0]) < clients:
                    await anyio.sleep(0.02)
            started = time.perf_counter()
            await server.ask(f"paced {events} {rate}")
            with anyio.fail_after(300):
                while len(done) < clients - PROBES or len(latencies) < PROBES * events:
                    await anyio.sleep(0.01)
            elapsed = (max(done) if done else time.perf_counter()) - started
        return (percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000,
                clients * events / elapsed)
    finally:
        server.close()


async def run_latency(quick: bool) -> list[dict[str, Any]]:
    """Issue 22, item 7: delivery latency p95 vs sse-starlette at 100 and 500 clients, at 200 events/s."""
    from .stats import row

    import statistics

    rows: list[dict[str, Any]] = []
    events, rounds = (200, 3) if quick else (600, 5)
    for clients in (100, 500):
        figures: dict[str, list[tuple[float, float, float]]] = {"ours": [], "sse-starlette": []}
        for _ in range(rounds):  # interleaved, so both sides see the same machine
            for kind in figures:
                figures[kind].append(await measure_latency(kind, clients, events, 200.0))
        ours, theirs = ({part: statistics.median(f[part] for f in figures[kind]) for part in range(3)}
                        for kind in ("ours", "sse-starlette"))
        rows.append(row(f"P4 SSE delivery latency p95, {clients} clients: ours vs sse-starlette", ours[1],
                        theirs[1], "<= 1.0x", unit="ms", passed=ours[1] <= theirs[1],
                        note=f"median of {rounds} interleaved runs; p50 {ours[0]:.1f} vs {theirs[0]:.1f} ms; "
                             f"{events} events at 200/s, {PROBES} timing readers"))
        rows.append(row(f"P4 SSE paced deliveries, {clients} clients: ours vs sse-starlette", ours[2], theirs[2],
                        ">= 1.0x", unit="ev/s", passed=ours[2] >= theirs[2] * 0.95,
                        note="deliveries/s until the last counting reader had every event"))
    return rows


async def _measure(kind: str, clients: int, pattern: str, events: int, rate: float) -> tuple[float, float]:
    """(events/s delivered, server CPU ms per 1,000 events delivered) for one server, pattern and audience."""
    server = CommandServer("bench.sse_fanout", kind, close_timeout_s=10.0)
    try:
        done: list[float] = []
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(_reader, server, events, done)
            with anyio.fail_after(60):
                while int((await server.ask("clients"))[0]) < clients:
                    await anyio.sleep(0.02)
            cpu_before = float((await server.ask("cpu"))[0])
            started = time.perf_counter()
            await server.ask(f"burst {events}" if pattern == "burst" else f"paced {events} {rate}")
            with anyio.fail_after(300):
                while len(done) < clients:
                    await anyio.sleep(0.01)
            elapsed = max(done) - started
            cpu = float((await server.ask("cpu"))[0]) - cpu_before
        delivered = clients * events
        return delivered / elapsed, cpu * 1000 / (delivered / 1000)
    finally:
        server.close()


async def run_fanout(quick: bool) -> list[dict[str, Any]]:
    from .stats import row

    rows: list[dict[str, Any]] = []
    levels = (10, 100, 500)
    for pattern in ("burst", "paced"):
        events = (500 if quick else 2000) if pattern == "burst" else (200 if quick else 600)
        for clients in levels:
            figures = {kind: await _measure(kind, clients, pattern, events, rate=200.0) for kind in KINDS}
            ours = figures["ours"]
            for baseline in ("bare", "sse-starlette"):
                theirs = figures[baseline]
                if pattern == "burst":
                    rows.append(row(f"P4 SSE burst, {clients} clients: ours vs {baseline}", ours[0], theirs[0], "",
                                    unit="ev/s", note=f"{events} events at once; higher is better"))
                else:
                    rows.append(row(f"P4 SSE paced, {clients} clients: ours vs {baseline}", ours[1], theirs[1], "",
                                    unit="CPU ms/1k ev",
                                    note=f"{events} events at 200/s; server CPU per delivered event, lower is better"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency", action="store_true", help="only the delivery-latency rows (issue 22)")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        anyio.run(_serve, args.serve)
        return 0
    for result in anyio.run(run_latency if args.latency else run_fanout, args.quick):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
