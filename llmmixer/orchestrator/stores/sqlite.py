"""Events in a SQLite file (``sqlite:///path``; optional ``?maxlen=N&max_bytes=M``): they survive a restart and
several processes may share the file.

The path follows the usual SQLAlchemy form: ``sqlite:///events.db`` is relative to the working directory,
``sqlite:////var/lib/llmmixer/events.db`` is absolute.

Storage model: one table ``events`` whose ``INTEGER PRIMARY KEY AUTOINCREMENT`` is the event id, so ids are
strictly increasing across every process writing the file and are never reused, even after a trim. The schema
changes only through the ordered, named migrations below, recorded in ``_llmmixer_migrations``: a new table
(conversations, prompts) is a new ``m00N_...`` function appended to :data:`MIGRATIONS`. WAL mode lets readers in
other processes run while one writes.

Size: the file is capped by default (:data:`DEFAULT_MAX_BYTES` of event payload, ``?max_bytes=`` to change it,
plus ``?maxlen=`` events if wanted). Each row carries its ``size``; triggers keep the total in ``_llmmixer_size``
for every process writing the file. A write that takes the total over the cap deletes the oldest events down to
90% of it, in the same transaction; readers who had not seen them get the usual ``gap``. Freed pages are reused,
so the file stops growing at about the cap.

Group commit: :meth:`SqliteStore.append_many` inserts a batch in one ``BEGIN IMMEDIATE`` transaction; a failure
(a full disk, a read-only file system) rolls it back whole and raises :class:`UnavailableError`.

Durability: ``synchronous=FULL`` (:data:`SYNCHRONOUS`): what a commit acknowledged survives a file-system error
or a power cut. If a reopened file nonetheless holds fewer ids than were acknowledged, the missing ones are
reported as an incident (a ``store.gap``), like a replaced file.

A database file deleted (or replaced) while the store has it open is noticed on the next call (its inode changed,
checked on every call, including the first after a failed reopen):
the store reopens the path, so a new file is created, and continues the id sequence after the highest id it knew;
everything the old file held is gone, which readers learn as a ``gap`` and the writer records as ``store.gap``
events (:meth:`SqliteStore.take_incidents`).

Every call runs on a worker thread through one serialised connection (``sqlite3`` with the GIL released during
I/O). :meth:`SqliteStore.wait_after` wakes at once on appends made through this object and polls for appends made
by other processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ...servers.core.errors import UnavailableError
from ...servers.core.events import Event
from .base import READ_LIMIT, StoreBase, StoreHealth, WriteToken, parse_int_id
from .runlog import SqliteRunLog, m002_runs

__all__ = ["SqliteStore", "MIGRATIONS", "DEFAULT_MAX_BYTES"]

T = TypeVar("T")
POLL_S = 0.05  # how soon an append by another process is noticed
DEFAULT_MAX_BYTES = 256 << 20  # of event payload; the file stays about this size
EVICT_TO = 0.9  # a trim frees down to this fraction of the cap, so it does not run on every write
ROW_OVERHEAD = 64  # bytes counted per row besides its data and run id
# FULL: a commit is on disk (the WAL fsynced) before the writer counts it as stored, so a file-system error or a
# power cut cannot take acknowledged events. bench/sqlite_sync_bench.py measures what it costs against NORMAL.
SYNCHRONOUS = "FULL"
READ_WAIT_S = 5.0  # a read waiting this long for a write to end fails (503) rather than block its caller


def m001_events(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run TEXT NOT NULL,
        ts REAL NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL)""")
    db.execute("CREATE INDEX events_run_id ON events (run, id)")


def m003_event_sizes(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE events ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
    db.execute(f"UPDATE events SET size = length(data) + length(run) + {ROW_OVERHEAD}")
    db.execute("CREATE TABLE _llmmixer_size (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL)")
    db.execute("INSERT INTO _llmmixer_size VALUES (1, (SELECT COALESCE(SUM(size), 0) FROM events))")
    db.execute("CREATE TRIGGER events_size_insert AFTER INSERT ON events BEGIN "
               "UPDATE _llmmixer_size SET bytes = bytes + NEW.size WHERE id = 1; END")
    db.execute("CREATE TRIGGER events_size_delete AFTER DELETE ON events BEGIN "
               "UPDATE _llmmixer_size SET bytes = bytes - OLD.size WHERE id = 1; END")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [m001_events, m002_runs, m003_event_sizes]


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
    def __init__(self, path: str | Path, *, maxlen: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 url: str | None = None, poll_s: float = POLL_S, synchronous: str = SYNCHRONOUS) -> None:
        self.path = Path(path)
        self.synchronous = synchronous  # FULL, or NORMAL (``?synchronous=normal``: faster commits, see SYNCHRONOUS)
        self.url = url or f"sqlite:///{self.path}"
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.poll_s = poll_s
        self.health = StoreHealth()
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection has open
        self._high = 0  # the highest id this object has seen: a replacement file continues after it
        self._incidents: list[str] = []
        self._opened = False
        self._lock = anyio.Lock()
        self._appended: anyio.Event | None = None

    # -- plumbing ---------------------------------------------------------------------------------------------------

    @property
    def _on_disk(self) -> bool:
        return str(self.path) != ":memory:"

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _connect(self) -> sqlite3.Connection:
        if self._on_disk:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'NORMAL' if self.synchronous == 'NORMAL' else 'FULL'}")
            _migrate(db)
            self._check_kept(db)
            if self._high:
                # A new file under the old path: ids go on after the highest the old one gave.
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'events'", (self._high,))
                if db.execute("SELECT changes()").fetchone()[0] == 0:
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (self._high,))
                db.execute("COMMIT")
            high = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            self._high = max(self._high, int(high[0]) if high else 0)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise
        self._file = self._identity() if self._on_disk else None
        return db

    def _check_kept(self, db: sqlite3.Connection) -> None:
        """On a reopen of the same file: every id this object acknowledged must still be there. After a file-system
        error (a disk forced read-only, then repaired) the tail of what was committed may be gone; say which ids."""
        if not self._high or self._identity() != self._file:
            return  # first open, or a new file (reported as a replaced file)
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        kept = int(row[0]) if row else 0
        if kept < self._high:
            self._incident(f"the database file {self.path} lost events {kept + 1}..{self._high} it had "
                           f"acknowledged (a file-system error)")

    def _ensure_same_file(self, force: bool = False) -> None:
        """On a worker thread, before each call (``force``: on :meth:`reconnect`): reopen when the file under our
        path is not the one we have open, or when an earlier reopen failed; on every reopen, report a file that is
        not the one we had, or that lost what it acknowledged."""
        if not force and self._db is not None and (not self._on_disk or self._identity() == self._file):
            return
        known = self._file
        if self._db is not None:
            old, self._db = self._db, None
            old.close()
        self._db = self._connect()  # raises while the path still cannot be opened; the next call tries again
        if known is not None and self._file != known:
            self._incident(f"the database file {self.path} was deleted or replaced while in use; the events it "
                           f"held up to id {self._high} are gone")

    def _incident(self, reason: str) -> None:
        self._incidents = [*self._incidents[-9:], reason]

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """``fn(connection)`` on a worker thread, one call at a time. A read waits at most :data:`READ_WAIT_S` for
        its turn (behind a write hung on a frozen disk, it fails instead); a write waits as long as it takes (the
        writer bounds how long anyone waits on it)."""
        try:
            with anyio.fail_after(None if write else READ_WAIT_S):
                await self._lock.acquire()
        except TimeoutError:
            raise UnavailableError(f"event store {self.url}: busy with a write for over {READ_WAIT_S:g} s (a frozen "
                                   "or stalled disk?)", retry_after_s=READ_WAIT_S) from None
        try:
            if not self._opened:
                raise UnavailableError(f"event store {self.url} is not open")

            def call() -> T:
                self._ensure_same_file()
                assert self._db is not None
                return fn(self._db)

            try:
                return await anyio.to_thread.run_sync(call)
            except (sqlite3.Error, OSError) as exc:
                raise UnavailableError(f"event store {self.url}: {exc}") from exc
        finally:
            self._lock.release()

    async def open(self) -> None:
        async with self._lock:
            if self._opened:
                return
            try:
                self._db = await anyio.to_thread.run_sync(self._connect)
            except (sqlite3.Error, OSError) as exc:
                raise UnavailableError(f"cannot open event store {self.url}: {exc}") from exc
            self._opened = True

    async def close(self) -> None:
        async with self._lock:
            self._opened = False
            db, self._db = self._db, None
            if db is not None:
                await anyio.to_thread.run_sync(db.close)

    async def reconnect(self) -> None:
        async with self._lock:
            if not self._opened:
                raise UnavailableError(f"event store {self.url} is not open")
            try:
                await anyio.to_thread.run_sync(lambda: self._ensure_same_file(force=True))
            except (sqlite3.Error, OSError) as exc:
                raise UnavailableError(f"cannot reopen event store {self.url}: {exc}") from exc

    def take_incidents(self) -> list[str]:
        incidents, self._incidents = self._incidents, []
        return incidents

    # -- the protocol -----------------------------------------------------------------------------------------------

    async def append_many(self, events: Sequence[Event], token: WriteToken | None = None) -> list[Event | None]:
        if not events:
            return []
        rows = []
        for event in events:
            data = json.dumps(event.data, ensure_ascii=False)
            rows.append((event.run, event.ts, event.source, event.type, data,
                         len(data) + len(event.run) + ROW_OVERHEAD))
        maxlen, max_bytes = self.maxlen, self.max_bytes

        def insert(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                first = None
                for row in rows:
                    new_id = db.execute("INSERT INTO events (run, ts, source, type, data, size) "
                                        "VALUES (?, ?, ?, ?, ?, ?) RETURNING id", row).fetchone()[0]
                    first = new_id if first is None else first
                last = int(new_id)
                if maxlen is not None and last > maxlen:
                    db.execute("DELETE FROM events WHERE id <= ?", (last - maxlen,))
                if max_bytes is not None:
                    held = db.execute("SELECT bytes FROM _llmmixer_size WHERE id = 1").fetchone()[0]
                    if held > max_bytes:
                        to_free = held - int(max_bytes * EVICT_TO)
                        cut = db.execute("SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY id) AS freed "
                                         "FROM events) WHERE freed >= ? ORDER BY id LIMIT 1",
                                         (to_free,)).fetchone()
                        # The newest event stays, however big: a store that holds nothing helps no one.
                        db.execute("DELETE FROM events WHERE id <= ?", (min(cut[0] if cut else last, last - 1),))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if self._on_disk and self._identity() != self._file:
                # Committed into a file that was deleted meanwhile: nobody will ever read it. Fail the write so
                # the writer retries it, into the new file, after the next call has reopened the path.
                raise sqlite3.OperationalError("the database file was deleted during the write")
            self._high = max(self._high, last)
            assert first is not None
            return int(first)

        first = await self._call(insert, write=True)
        stored: list[Event | None] = [event.with_id(first + i) for i, event in enumerate(events)]
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
        if value is not None:
            self._high = max(self._high, int(value))
        return None if value is None else str(value)

    async def bytes_held(self) -> int:
        """The event payload the file holds now (what the size cap counts)."""
        return int(await self._call(lambda db: db.execute("SELECT bytes FROM _llmmixer_size").fetchone()[0]))

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
