"""Issue 12 item 2: nothing is lost silently when the event store fails. Every fault is real: a redis-server of our
own killed (SIGKILL) or shut down and restarted mid-run, a tmpfs that fills up, a tmpfs remounted read-only, and a
database file deleted while it is being written.

The rule each test checks: every event the writer accepted is stored exactly once, or is covered by a
``store.gap`` event that every reader gets; ``/healthz`` answers 503 while the store fails; a run started during an
outage is spooled and written later (or refused with ``unavailable`` once the spool is full), never ``done`` with
nothing stored.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import server_env
from fault_support import fill, own_redis, remount, tmpfs
from sse_support import all_events, read_stream, web

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import RedisStore, SqliteStore, StoreWriter, open_store
from llmmixer.orchestrator.stores.base import EventStore
from llmmixer.servers.core.errors import UnavailableError
from llmmixer.servers.core.events import Event

pytestmark = pytest.mark.anyio

FAST_BACKOFF = (0.02, 0.05, 0.1)
LLMMIXER = str(Path(sys.executable).parent / "llmmixer")


def ev(i: int, run: str = "run-a") -> Event:
    return Event(run=run, source="claude", type="delta", data={"i": i, "text": f"tok{i} "})


@contextlib.asynccontextmanager
async def writing(store: EventStore, **options: Any) -> AsyncIterator[StoreWriter]:
    """A StoreWriter on ``store`` running in a task group (closed, with what it could write, on exit)."""
    writer = StoreWriter(store, backoff=FAST_BACKOFF, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        try:
            yield writer
        finally:
            await writer.aclose(10)


async def until(condition: Any, timeout_s: float = 20) -> None:
    """Poll ``condition()`` (state of another process or thread: nothing to await) until it holds."""
    with anyio.fail_after(timeout_s):
        while not condition():
            await anyio.sleep(0.02)


async def healthz(client: httpx2.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"{url}/healthz")
    return response.status_code, response.json()


def check_accounted(accepted: dict[int, Event], stored: list[Event]) -> tuple[int, int]:
    """Every accepted event (by accept number) is stored exactly once or inside a store.gap's range of its run.
    Returns ``(stored, covered)``."""
    seen = [e for e in stored if e.type != "store.gap"]
    keys = [(e.run, e.data["i"]) for e in seen]
    assert len(keys) == len(set(keys)), "an event was stored twice"
    by_key = {(e.run, e.data["i"]): e for e in seen}
    covered = 0
    gaps = [e for e in stored if e.type == "store.gap"]
    for seq, event in accepted.items():
        if (event.run, event.data["i"]) in by_key:
            continue
        hit = [g for g in gaps if g.run == event.run and g.data["seq"][0] <= seq <= g.data["seq"][1]]
        assert hit, f"event #{seq} of {event.run} is neither stored nor covered by a store.gap: a silent hole"
        covered += 1
    for gap in gaps:  # and no marker claims more than was lost
        low, high = gap.data["seq"]
        claimed = [s for s, e in accepted.items() if e.run == gap.run and low <= s <= high]
        assert gap.data["lost"] == len(claimed)
        assert not any((accepted[s].run, accepted[s].data["i"]) in by_key for s in claimed)
    # Stored in the order accepted.
    order = [e.data["i"] for e in seen if e.run == "run-a"]
    assert order == sorted(order)
    return len(seen), covered


# ---- Redis stopped and restarted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["kill", "shutdown"])
async def test_redis_stopped_mid_run_loses_nothing_and_healthz_says_so(stop: str, tmp_path: Path) -> None:
    with own_redis(tmp_path) as redis:
        store = open_store(f"{redis.url}?stream=faults")
        async with store, web(store) as (url, _), httpx2.AsyncClient(timeout=10) as client:
            accepted: dict[int, Event] = {}
            async with writing(store) as writer:
                for i in range(100):
                    accepted[writer.submit(ev(i))] = ev(i)
                assert await writer.flush()
                assert (await healthz(client, url))[0] == 200

                getattr(redis, stop)()
                for i in range(100, 300):  # the run goes on while Redis is down
                    accepted[writer.submit(ev(i))] = ev(i)
                    if i % 20 == 0:
                        await anyio.sleep(0.01)
                await until(lambda: not store.health.ok)
                status, body = await healthz(client, url)
                assert status == 503 and body["ok"] is False
                assert body["store"].startswith(f"{redis.url}?stream=faults: ") and len(body["store"]) > 40
                assert body["spooled"] > 0
                assert not await writer.flush()  # says at once that it cannot, instead of hanging

                redis.start()  # the writer reconnects its stale connections and writes the spool
                for i in range(300, 320):
                    accepted[writer.submit(ev(i))] = ev(i)
                with anyio.fail_after(30):
                    while not await writer.flush():
                        await anyio.sleep(0.05)
                assert (await healthz(client, url))[0] == 200
            stored = await all_events(store)
            assert check_accounted(accepted, stored) == (320, 0)  # every one, exactly once, in order
            assert writer.lost == 0 and store.health.ok


async def test_an_outage_longer_than_the_spool_is_recorded_as_a_gap_every_reader_gets(tmp_path: Path) -> None:
    with own_redis(tmp_path) as redis:
        store = open_store(f"{redis.url}?stream=faults")
        async with store, web(store) as (url, _), httpx2.AsyncClient(timeout=10) as client:
            accepted: dict[int, Event] = {}
            async with writing(store, max_events=50) as writer:
                for i in range(10):
                    accepted[writer.submit(ev(i))] = ev(i)
                assert await writer.flush()
                last_seen = (await store.last_id()) or ""
                redis.kill()
                for i in range(10, 200):
                    run = "run-a" if i % 4 else "run-b"
                    accepted[writer.submit(ev(i, run))] = ev(i, run)
                    if i % 10 == 0:
                        await anyio.sleep(0.01)
                await until(lambda: not store.health.ok)
                assert writer.lost >= 140 - len(writer._inflight)
                redis.start()
                with anyio.fail_after(30):
                    while not await writer.flush():
                        await anyio.sleep(0.05)
            stored = await all_events(store)
            kept, covered = check_accounted(accepted, stored)
            assert kept + covered == 200 and covered == writer.lost > 0
            gaps = [e for e in stored if e.type == "store.gap"]
            assert {g.run for g in gaps} == {"run-a", "run-b"}  # one per run that lost events
            assert all("spool full" in g.data["reason"] and g.data["writer"] == writer.writer_id for g in gaps)
            # A reader following one run, resuming from before the outage, gets its marker with its events.
            with anyio.fail_after(20):
                only_b = await read_stream(client, url, count=10**9, run="run-b", last_event_id=last_seen,
                                           until_type="store.gap")
            assert only_b.events[-1]["type"] == "store.gap" and only_b.events[-1]["run"] == "run-b"


# ---- a run started while the store is down --------------------------------------------------------------------------


def config() -> Config:
    return Config(servers=default_servers(inprocess=True), settings=Settings())


async def test_a_run_started_while_redis_is_down_is_spooled_and_written_later(emu: Any, tmp_path: Path) -> None:
    with own_redis(tmp_path) as redis:
        store = open_store(f"{redis.url}?stream=faults")
        writer = StoreWriter(store, backoff=FAST_BACKOFF, max_events=5_000)
        async with Runs(config(), store, writer=writer) as runs:
            redis.kill()
            run_id = await runs.start_ask("hello", models="claude", mode="race")
            assert await runs.wait(run_id, 60)
            result = await runs.snapshot(run_id)
            assert result["status"] == "done"
            assert not store.health.ok and writer.pending > 0  # nothing is in Redis yet, and we know it
            redis.start()
            with anyio.fail_after(30):
                while not await runs.flush():
                    await anyio.sleep(0.05)
            events = await store.read_after(None, 1000, run=run_id)
            assert events[0].type == "run.started" and events[-1].type == "run.done"
            assert events[-1].data["status"] == "done"
            text = "".join(e.data["text"] for e in events if e.type == "delta")
            assert text == result["legs"][0]["text"]

            # Down again, with a nearly full spool: a new run is refused, it is not accepted to be lost.
            redis.kill()
            for i in range(5_000):
                writer.submit(ev(i, run="filler"))
            await until(lambda: not store.health.ok)
            with pytest.raises(UnavailableError) as refused:
                await runs.start_ask("hello", models="claude")
            assert "failing" in refused.value.message and refused.value.retry_after_s
            redis.start()


# ---- SQLite: a full file system, a read-only one, a deleted file ----------------------------------------------------


async def test_sqlite_on_a_full_filesystem_keeps_the_events_until_there_is_room() -> None:
    with tmpfs("1m") as mount:
        store = SqliteStore(mount / "events.db")
        async with store, web(store) as (url, _), httpx2.AsyncClient(timeout=10) as client:
            accepted: dict[int, Event] = {}
            async with writing(store) as writer:
                for i in range(20):
                    accepted[writer.submit(ev(i))] = ev(i)
                assert await writer.flush()
                filler = fill(mount)
                big = "x" * 2000
                for i in range(20, 220):  # 400 KB: no room for it now, room enough once the filler is gone
                    event = Event(run="run-a", source="pty", type="pty.output", data={"i": i, "text": big})
                    accepted[writer.submit(event)] = event
                await until(lambda: not store.health.ok)
                status, body = await healthz(client, url)
                assert status == 503 and "full" in body["store"]
                filler.unlink()
                with anyio.fail_after(30):
                    while not await writer.flush():
                        await anyio.sleep(0.05)
                assert (await healthz(client, url))[0] == 200
            stored = await all_events(store)
        assert check_accounted(accepted, stored) == (220, 0)


async def test_sqlite_refuses_to_start_on_a_read_only_file_system_with_a_clear_error() -> None:
    with tmpfs("1m") as mount:
        async with SqliteStore(mount / "events.db") as store:
            await store.append(ev(0))
        remount(mount, "ro")
        try:
            with pytest.raises(UnavailableError) as refused:
                await SqliteStore(mount / "events.db").open()
            assert "cannot open event store" in refused.value.message
            # llmmixer serve says so and exits 2 before accepting anything (no traceback, no silent start).
            done = await anyio.run_process(
                [LLMMIXER, "serve", "--port", "0", "--store", f"sqlite:///{mount}/events.db"], check=False,
                env=server_env(None, keys=False))
            stderr = done.stderr.decode()
            assert done.returncode == 2 and "cannot open event store" in stderr and "Traceback" not in stderr
        finally:
            remount(mount, "rw")


async def test_sqlite_file_deleted_while_serving_keeps_ids_increasing_and_says_what_was_lost(
        tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    async with store, web(store) as (url, _), httpx2.AsyncClient(timeout=10) as client:
        async with writing(store) as writer:
            for i in range(50):
                writer.submit(ev(i))
            writer.submit(Event(run="finished", source="orchestrator", type="run.done", data={"status": "done"}))
            assert await writer.flush()
            before = await store.last_id()
            assert before is not None
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            for i in range(50, 60):
                writer.submit(ev(i))
            assert await writer.flush()
        assert path.exists()  # a new file under the same path
        stored = await all_events(store)
        assert [e.data["i"] for e in stored if e.type == "delta"] == list(range(50, 60))  # none twice, none lost
        gaps = [e for e in stored if e.type == "store.gap"]
        # The run in progress learns that its earlier events went with the file; the finished one is not bothered.
        assert [g.run for g in gaps] == ["run-a"] and gaps[0].data["lost"] == 50
        assert "deleted" in gaps[0].data["reason"]
        assert int(stored[0].id or 0) > int(before)  # ids never go back
        # A reader resuming from before the deletion is told of the hole first.
        with anyio.fail_after(20):
            resumed = await read_stream(client, url, count=len(stored), last_event_id="10")
        assert resumed.order[0] == "gap" and resumed.ids == [e.id for e in stored]


async def test_a_failing_sqlite_store_read_by_another_server_answers_503(tmp_path: Path) -> None:
    """The web app alone (no writer in it) reports a store it cannot read."""
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    async with store, web(store) as (url, _), httpx2.AsyncClient(timeout=10) as client:
        assert (await healthz(client, url))[0] == 200
        path.unlink()
        path.mkdir()  # the path is now a directory: nothing can open it
        status, body = await healthz(client, url)
        assert status == 503 and body["ok"] is False and str(path) in body["store"]


# ---- Redis as shared by replicas: the dedup of a retried write ------------------------------------------------------


async def test_redis_writes_retried_after_a_kill_are_never_stored_twice(tmp_path: Path) -> None:
    """Kill Redis over and over while a writer streams: whatever Redis had applied before dying is not written
    again by the retry."""
    with own_redis(tmp_path) as redis:
        store = open_store(f"{redis.url}?stream=faults")
        assert isinstance(store, RedisStore)
        async with store:
            accepted: dict[int, Event] = {}
            async with writing(store, batch_events=20) as writer:
                for round_ in range(4):
                    for i in range(round_ * 200, round_ * 200 + 200):
                        accepted[writer.submit(ev(i))] = ev(i)
                        if i % 25 == 0:
                            await anyio.sleep(0)
                    redis.kill()
                    redis.start()
                with anyio.fail_after(30):
                    while not await writer.flush():
                        await anyio.sleep(0.05)
            stored = await all_events(store)
    assert check_accounted(accepted, stored) == (800, 0)
