"""The orchestrator's one writer to the event store: a bounded spool, group commit, retries, and explicit loss.

Producers call :meth:`StoreWriter.submit` (never blocks, never fails): the event joins the *spool*, a FIFO bounded
by events and bytes, and gets an *accept number* (1, 2, 3, ... in submit order). One task, :meth:`StoreWriter.run`,
takes what is ready together (up to :data:`BATCH_EVENTS` / :data:`BATCH_BYTES`) and stores it with one
:meth:`~.base.EventStore.append_many`: one SQLite transaction, one Redis round trip, ids in submit order.

When a write fails the batch stays *in flight* and is retried, with backoff (:data:`BACKOFF_S`), after
:meth:`~.base.EventStore.reconnect` (a stale Redis connection, a reopened database file). Nothing is dropped while
the spool has room; the store's :class:`~.base.StoreHealth` says it is failing meanwhile (``/healthz`` answers 503).
A retried batch carries the same :class:`~.base.WriteToken`, so a write whose reply was lost is not stored twice.

A write that hangs (a frozen or stalled disk, a store that stopped answering) counts as failing once it has taken
:data:`WRITE_TIMEOUT_S`: new events go on into the spool as always, and everything that waits on the store's health
stops waiting (a run's start does not wait for its record, ``/healthz`` answers 503 at once, new runs are refused
when the spool nearly fills). The hung write itself is never abandoned or repeated: its outcome, when it comes,
decides whether the batch is stored or retried.

Giving up is explicit. If the spool overflows, its oldest waiting events (never the batch in flight) are dropped,
tallied per run, and the first thing written once the store takes writes again is one ``store.gap`` event per run
that lost some::

    {"reason": "...", "lost": 42, "seq": [first, last], "ts": [first, last], "types": {"delta": 41, ...},
     "writer": "<this writer's id>"}

Drops always take the oldest waiting event, so during one outage they take consecutive accept numbers: every event
of that run numbered ``seq[0]..seq[1]`` is gone, and every other accepted event is stored exactly once. The marker
is stored in the position those events would have had, and it is a stored event like any other: it survives the
outage and reaches every reader, live or replaying. A database file deleted under the store is reported the same
way, for each run still in progress (its earlier events went with the file).

The run log goes the same way: :meth:`StoreWriter.submit_record` queues a run's record (its prompt, then its final
status and result), only the newest version of each run's record is kept, and it is written with
``put_run`` before the next batch of events, retried through the same outage as the events. A run that finished
during an outage reads ``done`` with its text once the store is back, and every run started during it is in the
history.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc

from ...servers.core.events import Event
from .base import EventStore, StoreHealth, WriteToken, event_size

if TYPE_CHECKING:
    from ..history import RunLog

__all__ = ["StoreWriter", "BACKOFF_S", "DEFAULT_SPOOL_EVENTS", "DEFAULT_SPOOL_BYTES", "WRITE_TIMEOUT_S"]

log = logging.getLogger("llmmixer.stores")

DEFAULT_SPOOL_EVENTS = 100_000
DEFAULT_SPOOL_BYTES = 64 << 20
BATCH_EVENTS = 512
BATCH_BYTES = 1 << 20
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
WRITE_TIMEOUT_S = 2.0  # a write still running after this long: the store counts as failing until it ends
MAX_ACTIVE_RUNS = 10_000  # runs remembered as in progress, for reporting a lost database file
STORE_SOURCE = "store"


@dataclass
class _Item:
    seq: int | None  # accept number; None for the writer's own store.gap events
    event: Event
    size: int


@dataclass
class _Loss:
    """What one run lost in one episode (consecutive accept numbers)."""

    reason: str
    first_seq: int | None = None
    last_seq: int | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    lost: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def add(self, item: _Item) -> None:
        self.lost += 1
        if self.first_seq is None:
            self.first_seq, self.first_ts = item.seq, item.event.ts
        self.last_seq, self.last_ts = item.seq, item.event.ts
        self.types[item.event.type] = self.types.get(item.event.type, 0) + 1

    def marker(self, run: str, writer: str) -> Event:
        data: dict[str, Any] = {"reason": self.reason, "lost": self.lost, "writer": writer}
        if self.first_seq is not None:
            data.update(seq=[self.first_seq, self.last_seq], ts=[self.first_ts, self.last_ts], types=self.types)
        return Event(run=run, source=STORE_SOURCE, type="store.gap", data=data)


class StoreWriter:
    """See the module docstring. ``async with anyio.create_task_group() as tg: await tg.start(writer.run)``."""

    def __init__(self, store: EventStore, *, max_events: int = DEFAULT_SPOOL_EVENTS,
                 max_bytes: int = DEFAULT_SPOOL_BYTES, batch_events: int = BATCH_EVENTS,
                 batch_bytes: int = BATCH_BYTES, backoff: Sequence[float] = BACKOFF_S,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        if max_events < 1 or max_bytes < 1 or batch_events < 1:
            raise ValueError("spool and batch limits must be positive")
        self.store = store
        health = getattr(store, "health", None)
        self.health: StoreHealth = health if isinstance(health, StoreHealth) else StoreHealth()
        self.max_events, self.max_bytes = max_events, max_bytes
        self.batch_events, self.batch_bytes = batch_events, batch_bytes
        self.backoff = tuple(backoff) or BACKOFF_S
        self.write_timeout_s = write_timeout_s
        self.writer_id = uuid.uuid4().hex[:12]
        self.accepted = 0  # accept numbers given so far
        self.stored = 0  # events stored (not counting our own markers)
        self.lost = 0
        self.batches = 0  # successful append_many calls
        self._spool: deque[_Item] = deque()
        self._spool_bytes = 0
        self._inflight: list[_Item] = []
        self._token: WriteToken | None = None
        self._wseq = 0  # write sequence numbers handed to WriteTokens
        self._losses: OrderedDict[str, _Loss] = OrderedDict()
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()  # run id -> newest record not yet written
        self._active: OrderedDict[str, int] = OrderedDict()  # run -> events stored, until its run.done
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._closing = False
        self._stopped = False
        self._scope = anyio.CancelScope()

    # -- producers ------------------------------------------------------------------------------------------------

    def submit(self, event: Event) -> int:
        """Queue ``event`` for the store; returns its accept number. Never blocks; see the module docstring for
        what happens when the spool is full."""
        self.accepted += 1
        item = _Item(self.accepted, event, event_size(event))
        self._spool.append(item)
        self._spool_bytes += item.size
        while (len(self._spool) > self.max_events or self._spool_bytes > self.max_bytes) and len(self._spool) > 1:
            self._drop_oldest()
        self._sync_health()
        self._wake.set()
        return item.seq  # type: ignore[return-value]

    def submit_record(self, record: dict[str, Any]) -> None:
        """Queue a run's record for the run log (``put_run``); a newer record of the same run replaces it."""
        run_id = str(record["run_id"])
        self._records.pop(run_id, None)
        self._records[run_id] = record
        self._wake.set()

    @property
    def records_pending(self) -> int:
        return len(self._records)

    async def flush_record(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until ``run_id``'s record is written; False at once while the store is failing (it stays queued)."""
        with anyio.move_on_after(timeout if timeout is not None else float("inf")):
            while run_id in self._records:
                if not self.health.ok or self._stopped:
                    return False
                await self._changed.wait()
            return True
        return False

    @property
    def pending(self) -> int:
        """Events accepted but neither stored nor given up."""
        return len(self._spool) + sum(1 for item in self._inflight if item.seq is not None)

    @property
    def settled_through(self) -> int:
        """Every accept number up to this one is settled: stored, or given up and covered by a marker."""
        for item in self._inflight:
            if item.seq is not None:
                return item.seq - 1
        return self._spool[0].seq - 1 if self._spool else self.accepted  # type: ignore[operator]

    def is_settled(self, seq: int) -> bool:
        return seq <= self.settled_through

    def refusal(self) -> str | None:
        """Why a new run should be refused now (the store is failing and the spool is nearly full), else None."""
        if self.health.ok:
            return None
        if self.pending < 0.9 * self.max_events and self._spool_bytes < 0.9 * self.max_bytes:
            return None
        return (f"the event store {getattr(self.store, 'url', '?')} is failing ({self.health.write_error}) and "
                f"{self.pending} events are waiting to be written")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is settled and every marker written. Returns False at once
        when the store is failing (the events stay spooled), or after ``timeout`` seconds."""
        target = self.accepted
        with anyio.move_on_after(timeout if timeout is not None else float("inf")):
            # Later events in flight do not hold this up: under steady load the writer is never idle.
            while self.settled_through < target or self._markers_pending() or self._records:
                if not self.health.ok or self._stopped:
                    return False
                await self._changed.wait()
            return True
        return False

    # -- the writing task -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with self._scope:
            task_status.started()
            await self._loop()

    async def _loop(self) -> None:
        failures = 0
        try:
            while True:
                if not self._records and not self._inflight and not self._take_next():
                    if self._closing:
                        return
                    self._wake = anyio.Event()
                    if not self._spool and not self._losses and not self._records:
                        await self._wake.wait()
                    continue
                try:
                    if self._records:
                        await self._bounded(self._write_records)
                        continue
                    await self._bounded(self._append_inflight)
                except Exception as exc:  # noqa: BLE001 - every failure is retried; the spool holds the events
                    failures += 1
                    reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    if self.health.ok:
                        log.warning("event store write failed, retrying (%d events waiting): %s", self.pending,
                                    reason)
                    self.health.failed(reason)
                    self._notify()
                    await anyio.sleep(self.backoff[min(failures - 1, len(self.backoff) - 1)])
                    try:
                        await self.store.reconnect()
                    except Exception:  # noqa: BLE001 - the next write says whether it helped
                        pass
                    continue
                if failures:
                    log.warning("event store writes resumed after %d failed attempts", failures)
                failures = 0
                self._written()
        finally:
            self._stopped = True
            if self.pending or self._losses:
                log.error("event store %s: %d events could not be stored before the writer stopped",
                          getattr(self.store, "url", "?"), self.unwritten)
            if self._records:
                log.error("event store %s: %d run records could not be stored before the writer stopped",
                          getattr(self.store, "url", "?"), len(self._records))
            self._notify()

    async def aclose(self, timeout: float = 5.0) -> bool:
        """Write what is left, retrying for up to ``timeout`` seconds even while the store fails, then stop the
        task running :meth:`run`. True when everything was written; otherwise the rest is logged as lost."""
        done = False
        with anyio.move_on_after(timeout):
            while self.pending or self._losses or self._inflight or self._records:
                if self._stopped:
                    break
                await self._changed.wait()
            done = not (self.pending or self._losses or self._inflight or self._records)
        self._closing = True
        self._wake.set()
        if not done:
            self._scope.cancel()
        return done

    @property
    def unwritten(self) -> int:
        """Events accepted that are neither stored nor covered by a stored marker (what a stop leaves behind)."""
        return self.pending + sum(loss.lost for loss in self._losses.values())

    # -- internals ------------------------------------------------------------------------------------------------

    async def _bounded(self, write: Callable[[], Awaitable[None]]) -> None:
        """``write()`` to its end; if that takes over ``write_timeout_s``, the store is failing meanwhile."""

        async def watch() -> None:
            await anyio.sleep(self.write_timeout_s)
            reason = f"a write has not finished after {self.write_timeout_s:g} s (a frozen or stalled disk?)"
            log.warning("event store %s: %s; events wait in the spool", getattr(self.store, "url", "?"), reason)
            self.health.failed(reason)
            self._notify()

        error: Exception | None = None
        async with anyio.create_task_group() as watchdog:
            watchdog.start_soon(watch)
            try:
                await write()
            except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
                error = exc
            watchdog.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _append_inflight(self) -> None:
        assert self._token is not None
        await self.store.append_many([item.event for item in self._inflight], self._token)

    async def _write_records(self) -> None:
        """Write every queued run record, oldest first; a failure leaves the rest (and that one) queued."""
        for run_id, record in list(self._records.items()):
            await cast("RunLog", self.store).put_run(record)
            if self._records.get(run_id) is record:  # not replaced by a newer version meanwhile
                del self._records[run_id]
        self.health.recovered()
        self._notify()

    def _take_next(self) -> bool:
        """Move the next batch in flight: the markers owed first, then the oldest spooled events."""
        for reason in self.store.take_incidents():
            self._incident(reason)
        batch: list[_Item] = []
        if self._losses:
            batch = [_Item(None, loss.marker(run, self.writer_id), 256) for run, loss in self._losses.items()]
            self._losses.clear()
        else:
            size = 0
            while self._spool and len(batch) < self.batch_events and (not batch or size < self.batch_bytes):
                item = self._spool.popleft()
                self._spool_bytes -= item.size
                size += item.size
                batch.append(item)
        if not batch:
            return False
        self._inflight = batch
        self._token = WriteToken(self.writer_id, self._wseq + 1)
        self._wseq += len(batch)
        return True

    def _written(self) -> None:
        # What the store lost while taking this batch (a file replaced under it) was lost before the batch.
        for reason in self.store.take_incidents():
            self._incident(reason)
        for item in self._inflight:
            if item.seq is None:
                continue
            self.stored += 1
            run = item.event.run
            if item.event.type == "run.done":
                self._active.pop(run, None)
            else:
                self._active[run] = self._active.get(run, 0) + 1
                if len(self._active) > MAX_ACTIVE_RUNS:
                    self._active.popitem(last=False)
        self._inflight = []
        self._token = None
        self.batches += 1
        self.health.recovered()
        self._notify()

    def _drop_oldest(self) -> None:
        item = self._spool.popleft()
        self._spool_bytes -= item.size
        reason = self.health.write_error or "the event store fell behind"
        loss = self._losses.get(item.event.run)
        if loss is None:
            loss = self._losses[item.event.run] = _Loss(f"spool full ({self.max_events} events / "
                                                        f"{self.max_bytes} bytes) while writes failed: {reason}")
        loss.add(item)
        self.lost += 1
        self.health.lost += 1
        if self.lost == 1 or self.lost % 1000 == 0:
            log.error("event store spool full: %d events given up so far (each run gets a store.gap event)",
                      self.lost)

    def _incident(self, reason: str) -> None:
        log.error("event store: %s", reason)
        runs = list(self._active.items()) or [(STORE_SOURCE, 0)]
        for run, stored in runs:
            loss = self._losses.setdefault(run, _Loss(reason))
            loss.lost += stored
        self._active.clear()

    def _markers_pending(self) -> bool:
        return bool(self._losses) or any(item.seq is None for item in self._inflight)

    def _sync_health(self) -> None:
        self.health.spooled = self.pending

    def _notify(self) -> None:
        self._sync_health()
        self._changed.set()
        self._changed = anyio.Event()
