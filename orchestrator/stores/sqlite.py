"""Events in a SQLite file (``sqlite:///path``; optional ``?maxlen=N``): they survive a restart and several
processes may share the file.

The path follows the usual SQLAlchemy form: ``sqlite:///events.db`` is relative to the working directory,
``sqlite:////var/lib/llmmixer/events.db`` is absolute.

Storage model: one table ``events`` whose ``INTEGER PRIMARY KEY AUTOINCREMENT`` is the event id, so ids are
strictly increasing across every process writing the file and are never reused, even after a trim. The schema
changes only through the ordered, named migrations below, recorded in ``_llmmixer_migrations``. WAL mode lets
readers in other processes run while one writes.

Every call runs on a worker thread through one serialised connection (``sqlite3`` with the GIL released during
I/O). :meth:`SqliteStore.wait_after` wakes at once on appends made through this object and polls for appends made
by other processes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ...servers.core.errors import UnavailableError
from ...servers.core.events import Event
from .base import READ_LIMIT, StoreBase, parse_int_id
from .runlog import SqliteRunLog, m002_runs

__all__ = ["SqliteStore", "MIGRATIONS"]

T = TypeVar("T")
POLL_S = 0.05  # how soon an append by another process is noticed


def m001_events(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run TEXT NOT NULL,
        ts REAL NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL)""")
    db.execute("CREATE INDEX events_run_id ON events (run, id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [m001_events, m002_runs]


def _migrate(db: sqlite3.Connection) -> None:
    # IMMEDIATE takes the write lock first, so two processes opening a new file never both apply a migration.
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS _llmmixer_migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        done = {row[0] for row in db.execute("SELECT name FROM _llmmixer_migrations")}
        for migration in MIGRATIONS:
            if migration.__name__ not in done:
                migration(db)
                db.execute("INSERT INTO _llmmixer_migrations VALUES (?, ?)", (migration.__name__, time.time()))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _row_to_event(row: tuple[Any, ...]) -> Event:
    event_id, run, ts, source, type_, data = row
    return Event(run=run, source=source, type=type_, data=json.loads(data), ts=ts, id=str(event_id))


class SqliteStore(SqliteRunLog, StoreBase):
    def __init__(self, path: str | Path, *, maxlen: int | None = None, url: str | None = None,
                 poll_s: float = POLL_S) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self.maxlen = maxlen
        self.poll_s = poll_s
        self._db: sqlite3.Connection | None = None
        self._lock = anyio.Lock()
        self._appended: anyio.Event | None = None

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            if self._db is None:
                raise UnavailableError(f"event store {self.url} is not open")
            db = self._db
            return await anyio.to_thread.run_sync(fn, db)

    async def open(self) -> None:
        async with self._lock:
            if self._db is not None:
                return
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = await anyio.to_thread.run_sync(self._connect)
            except sqlite3.Error as exc:
                raise UnavailableError(f"cannot open event store {self.url}: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                await anyio.to_thread.run_sync(db.close)

    # -- the protocol -----------------------------------------------------------------------------------------------

    async def append(self, event: Event) -> Event:
        row = (event.run, event.ts, event.source, event.type, json.dumps(event.data, ensure_ascii=False))
        maxlen = self.maxlen

        def insert(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                new_id = db.execute("INSERT INTO events (run, ts, source, type, data) VALUES (?, ?, ?, ?, ?) "
                                    "RETURNING id", row).fetchone()[0]
                if maxlen is not None and new_id > maxlen:
                    db.execute("DELETE FROM events WHERE id <= ?", (new_id - maxlen,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return int(new_id)

        stored = event.with_id(await self._call(insert))
        if self._appended is not None:
            self._appended.set()
            self._appended = None
        return stored

    async def read_after(self, after: str | None, limit: int = READ_LIMIT, run: str | None = None) -> list[Event]:
        floor = int(after) if after is not None else 0
        columns = "SELECT id, run, ts, source, type, data FROM events"

        def select(db: sqlite3.Connection) -> list[Event]:
            if run is None:
                rows = db.execute(f"{columns} WHERE id > ? ORDER BY id LIMIT ?", (floor, limit)).fetchall()
            else:
                rows = db.execute(f"{columns} WHERE run = ? AND id > ? ORDER BY id LIMIT ?",
                                  (run, floor, limit)).fetchall()
            return [_row_to_event(row) for row in rows]

        return await self._call(select)

    async def first_id(self) -> str | None:
        value = await self._call(lambda db: db.execute("SELECT MIN(id) FROM events").fetchone()[0])
        return None if value is None else str(value)

    async def last_id(self) -> str | None:
        value = await self._call(lambda db: db.execute("SELECT MAX(id) FROM events").fetchone()[0])
        return None if value is None else str(value)

    async def wait_after(self, after: str | None, timeout: float) -> bool:
        floor = int(after) if after is not None else 0

        async def newer() -> bool:
            last = await self.last_id()
            return last is not None and int(last) > floor

        with anyio.move_on_after(timeout):
            while not await newer():
                if self._appended is None:
                    self._appended = anyio.Event()
                # Appends through this object wake us at once; other processes' appends at the next poll.
                with anyio.move_on_after(self.poll_s):
                    await self._appended.wait()
            return True
        return False

    def parse_id(self, raw: str) -> str:
        return parse_int_id(raw)

    def is_evicted(self, after: str, first: str | None) -> bool:
        # AUTOINCREMENT ids are consecutive unless a write was rolled back; a hole there is reported as a gap,
        # which errs on the side of telling the client.
        return first is not None and int(after) < int(first) - 1
