"""Issue 24 item 5: SQLite keeps what it acknowledged, and says so when it could not.

Real file-system faults: the database file replaced while a reopen cannot succeed (its path blocked), and a tmpfs
whose file is rolled back behind the store's back (what a repaired disk hands back after a forced read-only).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sse_support import all_events
from test_store_faults import ev, until, writing

from llmmixer.orchestrator.stores import SqliteStore
from llmmixer.orchestrator.stores.sqlite import SYNCHRONOUS

pytestmark = pytest.mark.anyio


async def test_the_store_commits_with_synchronous_full(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "events.db") as store:
        await store.append(ev(0))
        level = await store._call(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])  # noqa: SLF001
    assert SYNCHRONOUS == "FULL" and level == 2  # 2 = FULL


async def test_a_file_replaced_while_its_reopen_fails_is_still_reported_as_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SqliteStore(path) as store, writing(store) as writer:
        for i in range(30):
            writer.submit(ev(i))
        assert await writer.flush()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.mkdir()  # nothing can open the path: every reopen fails for now
        for i in range(30, 40):
            writer.submit(ev(i))
        await until(lambda: not store.health.ok)
        path.rmdir()  # repaired: the next reopen creates a new file
        await until(lambda: store.health.ok)
        assert await writer.flush()
        stored = await all_events(store)
    assert [e.data["i"] for e in stored if e.type == "delta"] == list(range(30, 40))
    gaps = [e for e in stored if e.type == "store.gap"]
    assert [g.run for g in gaps] == ["run-a"] and gaps[0].data["lost"] == 30 and "replaced" in gaps[0].data["reason"]


async def test_acknowledged_events_missing_after_a_reopen_are_covered_by_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SqliteStore(path) as store, writing(store) as writer:
        for i in range(10):
            writer.submit(ev(i))
        assert await writer.flush()
        # The disk hands back an older state of the same file (same inode): the tail of what was acknowledged.
        with sqlite3.connect(path) as other:
            other.execute("DELETE FROM events WHERE id > 4")
            other.execute("UPDATE sqlite_sequence SET seq = 4 WHERE name = 'events'")
        await store.reconnect()  # what the writer does after a failed write
        for i in range(10, 12):
            writer.submit(ev(i))
        assert await writer.flush()
        stored = await all_events(store)
    gaps = [e for e in stored if e.type == "store.gap"]
    assert len(gaps) == 1 and "lost events 5..10" in gaps[0].data["reason"]
    assert int(stored[-1].id or 0) > 10  # ids never reused
    shutil.rmtree(tmp_path, ignore_errors=True)
