"""Issue 6 chaos: a client reads a 10,000-event run while its connection is dropped at 1,000 random points and
resumes each time with Last-Event-ID. The assembled sequence must equal the store's: 0 duplicates, 0 gaps.

- memory: the server in this process; half the drops are server-side cuts (the stream registry), half the client
  closing its response.
- sqlite: the server is a separate process, restarted in the middle; the run is written by this process.
- redis: two server processes on one real Redis; every reconnect goes to the other one.

Plus retention: with a ring of 100, resuming from an evicted id gets ``event: gap`` first.

Issue 12 chaos (the store itself fails): the run goes through the orchestrator's StoreWriter into a redis-server of
our own, which is SIGKILLed once and SHUTDOWN once during the run and restarted each time; the first outage outlasts
the writer's spool, the second does not. A reader on a separate server process drops its connection at random
points and resumes. For every event the writer accepted, the reader sees it exactly once or sees the
``store.gap`` event covering it: zero silent holes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest
from sse_support import (
    STORE_KINDS,
    ServerProcess,
    all_events,
    ev,
    opened_store,
    origin_id,
    read_stream,
    redis_available,
    server_process,
    store_url,
    web,
)

from llmmixer.orchestrator.stores import StoreWriter, open_store
from llmmixer.orchestrator.stores.base import EventStore
from llmmixer.servers.core.events import EVENT_TYPES, Event

pytestmark = pytest.mark.anyio

RUN_EVENTS = 10_000
DROPS = 1_000
RUN = "chaos-run"


@dataclass
class Reader:
    """Reads one run through /events, dropping the connection at chosen counts and resuming."""

    urls: Callable[[], str]  # where the next connection goes
    drop_at: list[int]  # event counts after which to drop, ascending
    cut_server_side: Callable[[int], Awaitable[bool]] | None = None  # True if it cut the stream on the server
    on_progress: Callable[[int], Awaitable[None]] | None = None
    received: list[dict] = field(default_factory=list)
    gaps: int = 0
    connections: int = 0
    server_cuts: int = 0

    async def run(self, client: httpx2.AsyncClient, origin: str) -> None:
        last_id = origin
        drops = iter(self.drop_at)
        next_drop = next(drops, None)
        while len(self.received) < RUN_EVENTS:
            self.connections += 1
            try:
                async with client.stream("GET", f"{self.urls()}/events", params={"run": RUN},
                                         headers={"Last-Event-ID": last_id}) as response:
                    assert response.status_code == 200, (await response.aread()).decode()
                    async for sse in httpx2.EventSource(response):
                        if sse.event == "gap":
                            self.gaps += 1
                            continue
                        if sse.event not in EVENT_TYPES:
                            continue
                        self.received.append(json.loads(sse.data))
                        last_id = sse.id
                        count = len(self.received)
                        if self.on_progress is not None:
                            await self.on_progress(count)
                        if count >= RUN_EVENTS:
                            return
                        if next_drop is not None and count >= next_drop:
                            # The connection dies here: whatever was still in flight is lost with it.
                            if self.cut_server_side is not None and await self.cut_server_side(count):
                                self.server_cuts += 1
                            next_drop = next(drops, None)
                            break
            except httpx2.TransportError:
                pass  # cut by the server (or the server went away): resume


async def produce(store: EventStore, pace: int = 25) -> None:
    """The run (10,000 events) with another run's events interleaved, yielding now and then like a live run."""
    await store.append(Event(run=RUN, source="orchestrator", type="run.started", data={"kind": "ask"}))
    for i in range(1, RUN_EVENTS - 1):
        await store.append(ev(i, run=RUN))
        if i % 7 == 0:
            await store.append(ev(i, run="noise"))
        if i % pace == 0:
            await anyio.sleep(0)
    await store.append(Event(run=RUN, source="orchestrator", type="run.done", data={"status": "done"}))


async def check(reader: Reader, store: EventStore) -> None:
    expected = [event.to_dict() for event in await all_events(store, run=RUN)]
    assert len(expected) == RUN_EVENTS
    ids = [event["id"] for event in reader.received]
    assert len(set(ids)) == len(ids), "duplicates"
    assert reader.gaps == 0
    assert reader.received == expected  # same events, same ids, same order: no gap, no duplicate
    assert reader.connections > DROPS


def drop_points(seed: int) -> list[int]:
    return sorted(random.Random(seed).sample(range(1, RUN_EVENTS - 1), DROPS))


async def test_chaos_memory_store_server_and_client_side_drops() -> None:
    async with opened_store("memory://?maxlen=20000") as store, web(store) as (url, app):
        async def cut(count: int) -> bool:
            return count % 2 == 0 and app.state.streams.drop_all() > 0

        reader = Reader(urls=lambda: url, drop_at=drop_points(1), cut_server_side=cut)
        async with httpx2.AsyncClient(timeout=30) as client:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(produce, store)
                    await reader.run(client, origin_id(store))
        await check(reader, store)
        assert DROPS // 4 < reader.server_cuts < DROPS * 3 // 4


async def test_chaos_sqlite_store_with_a_server_restart(tmp_path: Path) -> None:
    url = store_url("sqlite", tmp_path)
    async with opened_store(url) as store:
        servers = [await stack_server(url)]
        restarted = anyio.Event()

        async def restart_midway(count: int) -> None:
            if count == RUN_EVENTS // 2 and not restarted.is_set():
                servers[-1].stop()  # SIGTERM: the open stream is cut, the process exits
                servers.append(await stack_server(url))
                restarted.set()

        reader = Reader(urls=lambda: servers[-1].url, drop_at=drop_points(2), on_progress=restart_midway)
        try:
            async with httpx2.AsyncClient(timeout=30) as client:
                with anyio.fail_after(90):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(produce, store, 50)
                        await reader.run(client, origin_id(store))
        finally:
            for server in servers:
                server.stop()
        assert restarted.is_set() and servers[0].proc.returncode is not None
        await check(reader, store)


async def stack_server(store: str) -> ServerProcess:
    """A started ``python -m llmmixer.orchestrator.web`` (stopped by the caller)."""
    server = ServerProcess(store)
    with anyio.fail_after(30):
        await server.started()
    return server


@pytest.mark.redis
@pytest.mark.skipif(not redis_available(), reason="needs redis-server on 127.0.0.1:6379")
async def test_chaos_redis_two_replicas_alternating(tmp_path: Path) -> None:
    url = store_url("redis", tmp_path, maxlen=100_000)
    async with opened_store(url) as store, server_process(url) as one, server_process(url) as two:
        replicas = [one.url, two.url]
        turn = [0]

        def next_replica() -> str:
            turn[0] += 1
            return replicas[turn[0] % 2]

        reader = Reader(urls=next_replica, drop_at=drop_points(3))
        async with httpx2.AsyncClient(timeout=30) as client:
            with anyio.fail_after(90):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(produce, store, 50)
                    await reader.run(client, origin_id(store))
        await check(reader, store)


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_retention_resume_from_an_evicted_id_gets_a_gap_first(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path, maxlen=100)) as store, web(store) as (url, _):
        written = [(await store.append(ev(i))).id for i in range(1000)]
        first = await store.first_id()
        retained = [e.id for e in await all_events(store)]
        assert first == retained[0] and 100 <= len(retained) < 1000
        async with httpx2.AsyncClient(timeout=10) as client:
            with anyio.fail_after(20):
                evicted = await read_stream(client, url, count=len(retained), last_event_id=written[0])
                recent = await read_stream(client, url, count=10, last_event_id=written[-11])
        assert evicted.order[0] == "gap" and evicted.order.count("gap") == 1
        assert evicted.gaps == [{"last_event_id": written[0], "first_available": first}]
        assert evicted.ids == retained  # then everything still held, in order
        assert recent.gaps == [] and recent.ids == written[-10:]


# ---- issue 12: Redis stopped and restarted twice under a writer, random drops under the reader ---------------------

STORE_CHAOS_EVENTS = 4_000
STORE_CHAOS_DROPS = 200
SPOOL = 300


async def read_through_outages(url: str, drop_at: list[int]) -> tuple[list[dict], list[dict], int]:
    """Follow RUN until its run.done, dropping at ``drop_at`` counts and riding out a server whose store is down
    (5xx, cut streams). Returns ``(events, store.gap markers, connections)``."""
    received: list[dict] = []
    markers: list[dict] = []
    last_id = "0-0"
    drops = iter(drop_at)
    next_drop = next(drops, None)
    connections = 0
    async with httpx2.AsyncClient(timeout=30) as client:
        while True:
            connections += 1
            try:
                async with client.stream("GET", f"{url}/events", params={"run": RUN},
                                         headers={"Last-Event-ID": last_id}) as response:
                    if response.status_code != 200:
                        await anyio.sleep(0.05)  # the store is down: the server says so; come back
                        continue
                    async for sse in httpx2.EventSource(response):
                        if sse.event not in EVENT_TYPES:
                            continue
                        payload = json.loads(sse.data)
                        last_id = sse.id
                        if sse.event == "store.gap":
                            markers.append(payload)
                            continue
                        received.append(payload)
                        if sse.event == "run.done":
                            return received, markers, connections
                        if next_drop is not None and len(received) >= next_drop:
                            next_drop = next(drops, None)
                            break  # the connection dies here
            except httpx2.TransportError:
                await anyio.sleep(0.02)


async def test_chaos_redis_stopped_and_restarted_twice_no_silent_hole(tmp_path: Path) -> None:
    from fault_support import own_redis

    with own_redis(tmp_path) as redis:
        url = f"{redis.url}?stream=chaos&maxlen=100000"
        store = open_store(url)
        writer = StoreWriter(store, max_events=SPOOL, backoff=(0.02, 0.05, 0.1))
        accepted: dict[int, Event] = {}  # accept number -> event, RUN's only
        outages: list[str] = []

        def submit(event: Event) -> None:
            seq = writer.submit(event)
            if event.run == RUN:
                accepted[seq] = event

        async def produce_through_outages() -> None:
            submit(Event(run=RUN, source="orchestrator", type="run.started", data={"kind": "ask", "i": 0}))
            for i in range(1, STORE_CHAOS_EVENTS - 1):
                submit(ev(i, run=RUN))
                if i % 7 == 0:
                    submit(ev(i, run="noise"))
                if i == STORE_CHAOS_EVENTS // 3:
                    redis.kill()  # SIGKILL mid-write
                    outages.append("kill")
                if i == STORE_CHAOS_EVENTS // 3 + 3 * SPOOL:  # outlasted the spool: some events are given up
                    await anyio.to_thread.run_sync(redis.start)
                if i == 2 * STORE_CHAOS_EVENTS // 3:
                    redis.shutdown()  # SHUTDOWN: Redis closes every connection and exits
                    outages.append("shutdown")
                if i == 2 * STORE_CHAOS_EVENTS // 3 + SPOOL // 3:  # within the spool: nothing is given up
                    await anyio.to_thread.run_sync(redis.start)
                if i % 20 == 0:
                    await anyio.sleep(0.002)
            submit(Event(run=RUN, source="orchestrator", type="run.done", data={"status": "done",
                                                                                   "i": STORE_CHAOS_EVENTS - 1}))

        async with store:
            async with server_process(url) as server, anyio.create_task_group() as tg:
                await tg.start(writer.run)
                drops = sorted(random.Random(12).sample(range(1, STORE_CHAOS_EVENTS - 1), STORE_CHAOS_DROPS))
                with anyio.fail_after(240):
                    tg.start_soon(produce_through_outages)
                    received, markers, connections = await read_through_outages(server.url, drops)
                    assert await writer.aclose(30)
            stored = [e for e in await all_events(store, run=RUN)]

    assert outages == ["kill", "shutdown"] and redis.starts == 3
    # What the reader assembled is what the store holds, in order, each once.
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids)), "duplicates"
    assert [e["id"] for e in received] == [e.id for e in stored if e.type != "store.gap"]
    assert [m["id"] for m in markers] == [e.id for e in stored if e.type == "store.gap"]
    # Every accepted event: seen exactly once, or covered by a marker the reader got.
    seen = [e["data"]["i"] for e in received]
    assert len(seen) == len(set(seen))
    seen_set = set(seen)
    covered = 0
    for seq, event in accepted.items():
        if event.data["i"] in seen_set:
            continue
        assert any(m["data"]["seq"][0] <= seq <= m["data"]["seq"][1] for m in markers), \
            f"event {event.data['i']} (accept #{seq}) is neither delivered nor covered: a silent hole"
        covered += 1
    assert covered == sum(m["data"]["lost"] for m in markers) > 0  # the long outage gave some up, said so
    assert len(seen) + covered == STORE_CHAOS_EVENTS
    assert connections > sum(1 for d in drops if d < len(received)) > STORE_CHAOS_DROPS // 2
