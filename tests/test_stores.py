"""The event stores: one contract suite run against memory, sqlite and a real Redis, plus what only some stores
promise (surviving a restart, sharing with another process) and the URL parser.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator import run_record
from llmmixer.orchestrator.stores import MemoryStore, RedisStore, SqliteStore, StoreWriter, id_key, open_store
from llmmixer.orchestrator.stores.base import EventStore, WriteToken
from llmmixer.orchestrator.stores.sqlite import MIGRATIONS
from llmmixer.servers.core.errors import InvalidInputError
from llmmixer.servers.core.events import Event

pytestmark = pytest.mark.anyio

REDIS = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = [pytest.mark.redis,
               pytest.mark.skipif(not redis_available(), reason="needs redis-server on 127.0.0.1:6379")]


def drop_stream(stream: str) -> None:
    import redis

    redis.Redis.from_url(REDIS).delete(stream)


def store_url(kind: str, tmp_path: Path, maxlen: int | None = None) -> str:
    suffix = f"maxlen={maxlen}" if maxlen else ""
    if kind == "memory":
        return f"memory://?{suffix}" if suffix else "memory"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/events.db" + (f"?{suffix}" if suffix else "")
    stream = f"llmmixer-test:{uuid.uuid4().hex}"
    return f"{REDIS}?stream={stream}" + (f"&{suffix}" if suffix else "")


MakeStore = Callable[..., Awaitable[EventStore]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=needs_redis)])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Opens stores of the parametrised kind (``await make_store(maxlen=N)``); closes them and drops Redis keys."""
    opened: list[EventStore] = []

    async def make(maxlen: int | None = None) -> EventStore:
        store = open_store(store_url(request.param, tmp_path / str(len(opened)), maxlen))
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
        if isinstance(store, RedisStore):
            drop_stream(store.stream)


def ev(i: int, run: str = "run-a", **data: Any) -> Event:
    return Event(run=run, source="claude", type="delta", data={"i": i, **data})


def keys(events: list[Event]) -> list[tuple[int, int]]:
    return [id_key(e.id or "") for e in events]


# ---- the contract every store keeps ---------------------------------------------------------------------------------


async def test_append_assigns_increasing_ids_and_reads_back_the_same_events(make_store: MakeStore) -> None:
    store = await make_store()
    assert await store.first_id() is None and await store.last_id() is None
    assert await store.read_after(None) == []
    sent = [ev(i, text="héllo ✓", nested={"a": [1, 2, None]}) for i in range(20)]
    stored = [await store.append(event) for event in sent]
    assert all(s.id is not None and s.id == store.parse_id(s.id) for s in stored)
    assert keys(stored) == sorted(set(keys(stored)))  # strictly increasing
    assert [s.with_id("x") for s in stored] == [e.with_id("x") for e in sent]  # nothing else changed

    read = await store.read_after(None)
    assert read == stored
    assert await store.first_id() == stored[0].id and await store.last_id() == stored[-1].id


async def test_read_after_is_strictly_after_limited_and_filters_by_run(make_store: MakeStore) -> None:
    store = await make_store()
    stored = [await store.append(ev(i, run="run-a" if i % 3 else "run-b")) for i in range(30)]
    assert await store.read_after(stored[9].id) == stored[10:]
    assert await store.read_after(stored[9].id, limit=5) == stored[10:15]
    assert await store.read_after(stored[-1].id) == []
    only_b = await store.read_after(None, run="run-b")
    assert only_b == [e for e in stored if e.run == "run-b"]
    assert await store.read_after(only_b[2].id, limit=3, run="run-b") == only_b[3:6]
    assert await store.read_after(None, run="no-such-run") == []


async def test_ids_compare_as_ids_not_strings(make_store: MakeStore) -> None:
    store = await make_store()
    stored = [await store.append(ev(i)) for i in range(12)]
    # For integer ids "10" < "9" as strings; every read must order by value.
    assert await store.read_after(stored[8].id) == stored[9:]
    assert keys(await store.read_after(None)) == sorted(keys(stored))


async def test_wait_after_times_out_returns_at_once_and_wakes_on_append(make_store: MakeStore) -> None:
    store = await make_store()
    first = await store.append(ev(0))
    with anyio.fail_after(5):
        assert await store.wait_after(None, timeout=5) is True  # already newer than "nothing"
        started = time.monotonic()
        assert await store.wait_after(first.id, timeout=0.2) is False
    assert time.monotonic() - started >= 0.15

    woke: list[bool] = []
    waiting = anyio.Event()

    async def waiter() -> None:
        waiting.set()
        woke.append(await store.wait_after(first.id, timeout=30))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await waiting.wait()
            await anyio.sleep(0.05)  # let the waiter block (a late append must still wake it)
            await store.append(ev(1))
    assert woke == [True]


async def test_concurrent_appends_keep_strict_order(make_store: MakeStore) -> None:
    store = await make_store()
    writers, per_writer = 8, 50

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await store.append(ev(i, run=f"writer-{w}"))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for w in range(writers):
                tg.start_soon(writer, w)
    everything: list[Event] = []
    after = None
    while batch := await store.read_after(after, limit=64):
        everything.extend(batch)
        after = batch[-1].id
    assert len(everything) == writers * per_writer
    assert keys(everything) == sorted(set(keys(everything)))
    for w in range(writers):  # each writer's events in the order it wrote them
        assert [e.data["i"] for e in everything if e.run == f"writer-{w}"] == list(range(per_writer))


async def test_eviction_keeps_the_newest_and_reports_gaps(make_store: MakeStore) -> None:
    store = await make_store(maxlen=100)
    stored = [await store.append(ev(i)) for i in range(1000)]
    first = await store.first_id()
    assert first is not None
    retained = await store.read_after(None, limit=1000)
    # Redis trims whole nodes (MAXLEN ~), so it may keep a few more than 100; never fewer, never all.
    assert 100 <= len(retained) < 1000
    assert retained == stored[-len(retained):] and retained[0].id == first
    if not isinstance(store, RedisStore):
        assert len(retained) == 100

    oldest_kept = len(stored) - len(retained)
    assert store.is_evicted(stored[0].id or "", first)
    assert store.is_evicted(stored[oldest_kept - 2].id or "", first)
    if not isinstance(store, RedisStore):
        # The id right before the oldest retained lost nothing. (Redis cannot tell which trimmed id came last, so
        # it reports that one as a gap too, conservatively.)
        assert not store.is_evicted(stored[oldest_kept - 1].id or "", first)
    assert not store.is_evicted(stored[-1].id or "", first)
    assert await store.read_after(stored[0].id) == retained[:1000]


async def test_parse_id_accepts_own_ids_and_refuses_garbage(make_store: MakeStore) -> None:
    store = await make_store()
    stored = await store.append(ev(0))
    assert store.parse_id(stored.id or "") == stored.id
    garbage = ["", " ", "abc", "-5", "1e9", "1.5", "'; DROP TABLE events;--", "9" * 30, "0x10", "1_000", "١٢"]
    garbage += ["12"] if isinstance(store, RedisStore) else ["1-0", "01"]
    for raw in garbage:
        with pytest.raises(InvalidInputError):
            store.parse_id(raw)


async def test_open_is_idempotent(make_store: MakeStore) -> None:
    store = await make_store()
    await store.open()
    stored = await store.append(ev(0))
    await store.open()
    assert await store.read_after(None) == [stored]


# ---- group commit ---------------------------------------------------------------------------------------------------


async def test_append_many_stores_a_batch_in_order_with_increasing_ids(make_store: MakeStore) -> None:
    store = await make_store()
    before = await store.append(ev(-1))
    batch = [ev(i, run=f"run-{i % 3}") for i in range(300)]
    stored = await store.append_many(batch)
    assert all(s is not None for s in stored)
    ids = [s.id for s in stored if s is not None]
    assert keys([before, *stored]) == sorted(set(keys([before, *stored])))  # type: ignore[list-item]
    assert [s.with_id("x") for s in stored if s] == [e.with_id("x") for e in batch]
    assert [e.id for e in await store.read_after(before.id)] == ids
    assert await store.append_many([]) == []


async def test_a_retried_batch_with_the_same_token_is_not_stored_twice(make_store: MakeStore) -> None:
    """A write whose reply was lost is retried with its token: Redis skips what it already applied. (Memory and
    SQLite writes are never ambiguous; they store what they are given.)"""
    store = await make_store()
    batch = [ev(i) for i in range(5)]
    token = WriteToken("w-test", 1)
    first = await store.append_many(batch, token)
    again = await store.append_many(batch, token)
    stored = await store.read_after(None)
    if isinstance(store, RedisStore):
        assert again == [None] * 5 and [e.id for e in stored] == [e.id for e in first if e]
        newer = await store.append_many([ev(9)], WriteToken("w-test", 6))
        assert newer[0] is not None and (await store.read_after(None))[-1].id == newer[0].id
    else:
        assert len(stored) == 10


async def test_the_writer_commits_what_is_ready_together_in_order(make_store: MakeStore) -> None:
    store = await make_store()
    writer = StoreWriter(store, batch_events=100)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        seqs = [writer.submit(ev(i, run=f"run-{i % 4}")) for i in range(1000)]  # all ready at once
        with anyio.fail_after(30):
            assert await writer.flush()
        assert await writer.aclose()
    assert seqs == list(range(1, 1001)) and writer.stored == 1000 and writer.lost == 0
    assert writer.batches == 10  # 1000 events ready together: ten transactions of 100, not 1000 of one
    stored = await store.read_after(None, limit=2000)
    assert [e.data["i"] for e in stored] == list(range(1000))
    assert keys(stored) == sorted(set(keys(stored)))
    assert store.health.ok and store.health.spooled == 0


# ---- bounded by bytes -----------------------------------------------------------------------------------------------


async def test_memory_ring_is_bounded_by_bytes_as_well_as_count() -> None:
    store = MemoryStore(maxlen=10_000, max_bytes=200_000)
    big = "x" * 10_000
    stored = [await store.append(ev(i, text=big)) for i in range(100)]
    assert store.bytes_held <= 200_000
    first = await store.first_id()
    assert first is not None and 10 < int(first) < 100
    held = await store.read_after(None, limit=1000)
    assert held == stored[int(first) - 1:]  # the newest, in order
    assert store.is_evicted(stored[0].id or "", first) and not store.is_evicted(stored[-2].id or "", first)
    huge = await store.append(ev(100, text="y" * 500_000))  # alone over the budget: kept, everything else goes
    assert await store.read_after(None) == [huge]


async def test_sqlite_has_a_size_cap_evicting_oldest_first(tmp_path: Path) -> None:
    cap = 400_000
    async with SqliteStore(tmp_path / "events.db", max_bytes=cap) as store:
        big = "z" * 10_000
        stored: list[Event] = []
        for i in range(0, 600, 20):
            stored += [s for s in await store.append_many([ev(j, text=big) for j in range(i, i + 20)]) if s]
            assert await store.bytes_held() <= cap
        first = await store.first_id()
        held = await store.read_after(None, limit=1000)
        assert first is not None and held == stored[-len(held):] and 20 < len(held) < 40
        assert store.is_evicted(stored[0].id or "", first)
        assert await store.bytes_held() == sum(len(json.dumps(e.data)) + len(e.run) + 64 for e in held)
    # Freed pages are reused: after 6 MB of events the file holds about the cap, not the 6 MB.
    assert (tmp_path / "events.db").stat().st_size < 4 * cap


async def test_sqlite_migrations_are_ordered_named_and_upgrade_an_old_file(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _llmmixer_migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
    MIGRATIONS[0](db)
    db.execute("INSERT INTO _llmmixer_migrations VALUES ('m001_events', 0)")
    db.execute("INSERT INTO events (run, ts, source, type, data) VALUES ('r', 1, 'claude', 'delta', '{\"i\": 1}')")
    db.close()
    async with SqliteStore(path) as store:
        assert [e.data for e in await store.read_after(None)] == [{"i": 1}]
        assert await store.bytes_held() == len('{"i": 1}') + 1 + 64
        appended = await store.append(ev(2))
        assert appended.id == "2"
    names = [row[0] for row in sqlite3.connect(path).execute("SELECT name FROM _llmmixer_migrations ORDER BY name")]
    assert names == [m.__name__ for m in MIGRATIONS] == sorted(names)


# ---- each text stored once ------------------------------------------------------------------------------------------


def test_a_run_record_keeps_each_text_once_and_rebuilds_the_result() -> None:
    deltas = [("claude", "Hel"), ("gpt", "Bon"), ("claude", "lo"), ("gpt", "jour")]
    leg_claude = {"source": "claude", "status": "won", "text": "Hello", "usage": {"output_tokens": 2}}
    leg_gpt = {"source": "gpt", "status": "cancelled", "text": "Bonjour"}
    leg_done = run_record.compact("leg.done", "claude", leg_claude, deltas)
    assert "text" not in leg_done and leg_done["text_chars"] == 5 and leg_done["usage"] == {"output_tokens": 2}
    other = run_record.compact("leg.done", "claude", {**leg_claude, "text": "not what streamed"}, deltas)
    assert other["text"] == "not what streamed"  # a differing copy is kept
    done = run_record.compact("run.done", "orchestrator", {"status": "done", "winner": "claude",
                                                           "legs": [leg_claude, leg_gpt]}, deltas)
    assert all("text" not in leg for leg in done["legs"])

    events = [Event(run="r1", source="orchestrator", type="run.started", data={"kind": "ask"}, id="1")]
    events += [Event(run="r1", source=s, type="delta", data={"text": t}, id=str(i + 2)) for i, (s, t) in
               enumerate(deltas)]
    events += [Event(run="r1", source="orchestrator", type="run.done", data=done, id="9")]
    rebuilt = run_record.snapshot("r1", events)
    assert rebuilt["legs"] == [leg_claude, leg_gpt] and rebuilt["status"] == "done" and "incomplete" not in rebuilt
    partial = run_record.snapshot("r1", [events[0], *events[2:]])  # a delta evicted
    assert partial["incomplete"] is True

    output = "line\n" * 1000
    chunks = [("pty", output[i:i + 700]) for i in range(0, len(output), 700)]
    exit_data = run_record.compact("pty.exit", "pty", {"exit_code": 0, "output": output[-2000:]}, chunks)
    assert exit_data == {"exit_code": 0, "output_chars": 2000}
    cmd = [Event(run="c", source="orchestrator", type="run.started", data={"kind": "command"}, id="1")]
    cmd += [Event(run="c", source="pty", type="pty.output", data={"text": t}, id=str(i + 2))
            for i, (_, t) in enumerate(chunks)]
    cmd += [Event(run="c", source="orchestrator", type="run.done", data={"status": "done", **exit_data}, id="99")]
    assert run_record.snapshot("c", cmd)["output"] == output[-2000:]


# ---- surviving a restart, sharing with other processes --------------------------------------------------------------

WRITER = """
import json, sys, anyio
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.events import Event

async def main(url, count):
    async with open_store(url) as store:
        ids = [(await store.append(Event(run="other-process", source="pty", type="pty.output",
                                         data={"text": f"line {i}"}))).id for i in range(count)]
    print(json.dumps(ids))

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def write_in_subprocess(url: str, count: int) -> list[str]:
    result = await anyio.run_process([sys.executable, "-c", WRITER, url, str(count)], check=False)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


async def test_sqlite_survives_a_restart_with_the_same_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    async with open_store(url) as store:
        before = [await store.append(ev(i)) for i in range(10)]
    async with open_store(url) as reopened:
        assert await reopened.read_after(None) == before
        after = await reopened.append(ev(10))
        assert id_key(after.id or "") > id_key(before[-1].id or "")


@pytest.mark.e2e
async def test_sqlite_is_shared_with_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    async with open_store(url) as store:
        mine = await store.append(ev(0))
        woke: list[bool] = []
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                async def wait() -> None:
                    woke.append(await store.wait_after(mine.id, timeout=50))

                tg.start_soon(wait)
                theirs = await write_in_subprocess(url, 25)
        assert woke == [True]  # an append by another process wakes a waiter here (by polling)
        read = await store.read_after(mine.id)
        assert [e.id for e in read] == theirs
        assert [e.data["text"] for e in read] == [f"line {i}" for i in range(25)]


@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.skipif(not redis_available(), reason="needs redis-server on 127.0.0.1:6379")
async def test_redis_is_shared_with_another_process() -> None:
    url = store_url("redis", Path("."))
    async with open_store(url) as store:
        assert isinstance(store, RedisStore)
        try:
            mine = await store.append(ev(0))
            woke: list[bool] = []
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    async def wait() -> None:
                        woke.append(await store.wait_after(mine.id, timeout=50))

                    tg.start_soon(wait)
                    theirs = await write_in_subprocess(url, 25)
            assert woke == [True]  # XREAD BLOCK wakes on another process's XADD
            read = await store.read_after(mine.id)
            assert [e.id for e in read] == theirs
            assert all(e.run == "other-process" and e.type == "pty.output" for e in read)
        finally:
            drop_stream(store.stream)


# ---- choosing a store by URL ----------------------------------------------------------------------------------------


def test_store_urls_pick_the_right_store(tmp_path: Path) -> None:
    assert isinstance(open_store(None), MemoryStore) and open_store(None).maxlen == 10_000  # type: ignore[attr-defined]
    assert isinstance(open_store("memory"), MemoryStore)
    assert open_store("memory://?maxlen=100").maxlen == 100  # type: ignore[attr-defined]

    absolute = open_store(f"sqlite:///{tmp_path}/e.db?maxlen=5")
    assert isinstance(absolute, SqliteStore) and absolute.path == tmp_path / "e.db" and absolute.maxlen == 5
    relative = open_store("sqlite:///data/e.db")
    assert isinstance(relative, SqliteStore) and str(relative.path) == "data/e.db" and relative.maxlen is None
    assert relative.max_bytes == 256 << 20  # capped by default
    assert open_store("sqlite:///e.db?max_bytes=64m").max_bytes == 64 << 20  # type: ignore[attr-defined]
    assert open_store("memory://?max_bytes=1000").max_bytes == 1000  # type: ignore[attr-defined]

    redis_store = open_store("redis://127.0.0.1:6380/2?stream=mine&maxlen=50")
    assert isinstance(redis_store, RedisStore)
    assert redis_store.stream == "mine" and redis_store.maxlen == 50
    assert redis_store.redis_url == "redis://127.0.0.1:6380/2"
    assert open_store("redis://localhost").stream == "llmmixer:events"  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", [
    "postgres://localhost/events", "events.db", "memory://somewhere", "memory://?maxlen=0",
    "memory://?maxlen=ten", "memory://?size=5", "sqlite://events.db", "sqlite:///", "sqlite:///e.db?maxlen=-1",
    "redis://", "redis://:6379/0", "redis://localhost:port/0", "redis://localhost/zero",
    "redis://localhost/0?maxlen=0", "redis://localhost/0?stream=", "memory://?max_bytes=0",
    "sqlite:///e.db?max_bytes=lots", "sqlite:///e.db?max_bytes=-1m",
])
def test_bad_store_urls_fail_before_anything_starts(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        open_store(url)
    assert url in caught.value.message or "event store URL" in caught.value.message
    assert caught.value.kind.value == "invalid_input"
