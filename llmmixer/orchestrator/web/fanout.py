"""One reader of the event store per app, fanning each new event out to every open ``/events`` stream.

:class:`EventHub` tails the store (``read_after`` + ``wait_after``), encodes each event as SSE bytes once, and
pushes the shared bytes into every :class:`Subscription`. However many clients are connected, the store is read
once per batch and each event is encoded once.

Each subscription is a bounded queue. A client that stops reading fills it; on overflow the subscription is
closed and its connection cut (the client comes back with its ``Last-Event-ID`` and catches up from the store),
so a slow client can neither grow the server's memory nor hold up anyone else. Queued items are references to
the shared bytes, so a full queue costs pointers, not copies.

Sends are coalesced only under pressure. After each publish the hub waits until the streams have written it
(all but a sixteenth of them, so a stuck client holds up no one), at most :data:`MAX_FRAME_S`, before it reads
the store again; whatever arrived meanwhile goes out as one chunk per stream. When the streams keep up (an idle
loop, a few dashboards) that wait ends at once and every event goes out as it comes, with no added latency; when
they do not (500 dashboards, a fast run), the events that came while they were writing are joined, so the
fan-out's cost is one wake-up and one write per stream per round instead of per event, and it stays a bounded
share of the loop the runs share. Below :data:`MIN_PACED_STREAMS` streams the hub does not wait at all.

Hand-over from replay to live is gap-free because of one invariant: :attr:`EventHub.cursor` (the newest id
pushed) and the pushes happen in the same step, with no ``await`` between them. A subscription records the cursor
when it is created; everything newer arrives through its queue, everything up to it is in the store.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel
from sse_starlette.event import ServerSentEvent

from ...servers.core.events import Event
from ..stores.base import READ_LIMIT, EventStore, id_key

__all__ = ["EventHub", "Subscription", "Backlog", "Batch", "Encoded", "encode_event", "DEFAULT_MAX_QUEUE"]

log = logging.getLogger("llmmixer.web")

DEFAULT_MAX_QUEUE = 10_000  # events a client may fall behind before its connection is cut
IDLE_WAIT_S = 5.0  # the store is re-checked at least this often even without a wake-up
RETRY_BACKOFF_S = (0.05, 0.2, 1.0, 2.0)
MAX_FRAME_S = 0.25  # the longest the hub waits for the streams to write a batch before it publishes the next
MIN_PACED_STREAMS = 20  # below this a fan-out is cheap: publish as events come
STRAGGLERS = 16  # the hub goes on once all but 1/STRAGGLERS of the streams have written


@dataclass(frozen=True, slots=True)
class Encoded:
    """One event, SSE-encoded once and shared by every stream that sends it."""

    key: tuple[int, int]
    run: str
    chunk: bytes


def encode_event(event: Event) -> Encoded:
    assert event.id is not None
    chunk = ServerSentEvent(data=event.to_json(), event=event.type, id=event.id, sep="\n").encode()
    return Encoded(key=id_key(event.id), run=event.run, chunk=chunk)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events published together: their encodings, and those joined into the one chunk every stream sends."""

    items: tuple[Encoded, ...]
    chunk: bytes

    @classmethod
    def of(cls, items: Sequence[Encoded]) -> Batch:
        return cls(tuple(items), items[0].chunk if len(items) == 1 else b"".join(item.chunk for item in items))

    @property
    def first(self) -> tuple[int, int]:
        return self.items[0].key

    @property
    def last(self) -> tuple[int, int]:
        return self.items[-1].key

    def after(self, floor: tuple[int, int]) -> Batch | None:
        """The part of this batch strictly after ``floor`` (already sent by the replay), or None."""
        if self.first > floor:
            return self
        kept = [item for item in self.items if item.key > floor]
        return Batch.of(kept) if kept else None


class Backlog:
    """How many streams hold events they have not written yet; the hub waits on it (see the module docstring)."""

    def __init__(self) -> None:
        self.busy = 0
        self._below: tuple[int, anyio.Event] | None = None

    def add(self) -> None:
        self.busy += 1

    def done(self) -> None:
        self.busy -= 1
        if self._below is not None and self.busy <= self._below[0]:
            self._below[1].set()
            self._below = None

    async def wait_below(self, limit: int) -> None:
        """Return once at most ``limit`` streams are behind."""
        while self.busy > limit:
            event = anyio.Event()
            self._below = (limit, event)
            await event.wait()


class Subscription:
    """A bounded queue of encoded events for one stream, optionally one run's only."""

    def __init__(self, start: str | None, run: str | None, max_queue: int,
                 on_overflow: Callable[[], None] | None = None, backlog: Backlog | None = None) -> None:
        self.start = start  # the hub's cursor when this subscription began; newer events come through the queue
        self.run = run
        self.max_queue = max_queue
        self.closed = False
        self.overflowed = False
        self._batches: deque[Batch] = deque()
        self._queued = 0  # events in _batches
        self._wake = anyio.Event()
        self._on_overflow = on_overflow
        self._backlog = backlog
        self._behind = False  # counted in the backlog: holds events it has not written

    def push(self, batch: Batch) -> bool:
        """Queue ``batch`` (this run's events only); returns False when the subscription is over."""
        if self.closed:
            return False
        if self.run is not None:
            if any(item.run != self.run for item in batch.items):
                mine = [item for item in batch.items if item.run == self.run]
                if not mine:
                    return True
                batch = Batch.of(mine)
        if self._queued + len(batch.items) > self.max_queue:
            self.overflowed = True
            self.close()
            if self._on_overflow is not None:
                self._on_overflow()
            return False
        self._batches.append(batch)
        self._queued += len(batch.items)
        if not self._behind and self._backlog is not None:
            self._behind = True
            self._backlog.add()
        if not self._wake.is_set():
            self._wake.set()
        return True

    def _caught_up(self) -> None:
        if self._behind:
            self._behind = False
            assert self._backlog is not None
            self._backlog.done()

    def close(self) -> None:
        self.closed = True
        self._batches.clear()
        self._queued = 0
        self._caught_up()
        self._wake.set()

    async def get_batches(self) -> list[Batch]:
        """Every batch queued, waiting until there is one; ``[]`` once closed. Asking again with nothing queued
        means the stream has written what it got: it is no longer behind."""
        if not self._batches:
            self._caught_up()
        while not self._batches and not self.closed:
            await self._wake.wait()
            self._wake = anyio.Event()
        batches = list(self._batches)
        self._batches.clear()
        self._queued = 0
        return batches

    async def get(self) -> list[Encoded]:
        """Everything queued, as single events, waiting until there is something; ``[]`` once closed."""
        return [item for batch in await self.get_batches() for item in batch.items]


class EventHub:
    """The store's single tail for this app (see the module docstring). Start it with ``await tg.start(hub.run)``."""

    def __init__(self, store: EventStore, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.store = store
        self.max_queue = max_queue
        self.cursor: str | None = None
        self.started = False
        self._subs: set[Subscription] = set()
        self._backlog = Backlog()

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def subscribe(self, run: str | None = None, on_overflow: Callable[[], None] | None = None) -> Subscription:
        if not self.started:
            raise RuntimeError("the event hub is not running (the app's lifespan starts it)")
        sub = Subscription(self.cursor, run, self.max_queue, on_overflow, self._backlog)
        self._subs.add(sub)
        return sub

    async def _let_streams_write(self) -> None:
        """After a publish: wait (at most :data:`MAX_FRAME_S`) until the streams have written it, bar stragglers."""
        count = len(self._subs)
        if count < MIN_PACED_STREAMS:
            return
        with anyio.move_on_after(MAX_FRAME_S):
            await self._backlog.wait_below(count // STRAGGLERS)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.close()

    def _publish(self, events: list[Event]) -> None:
        batch = Batch.of([encode_event(event) for event in events])  # encoded and joined once for everyone
        # No await from here to the end: the cursor and the pushes change together (the hand-over invariant).
        self.cursor = events[-1].id
        for sub in list(self._subs):
            if not sub.push(batch):
                self._subs.discard(sub)

    def _drop_everyone(self) -> None:
        """The hub itself fell behind retention: every live stream would have a hole, so end them all; each
        client reconnects and its replay reports the gap."""
        for sub in list(self._subs):
            sub.overflowed = True
            sub.close()
            if sub._on_overflow is not None:
                sub._on_overflow()
        self._subs.clear()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        failures = 0
        while True:
            try:
                self.cursor = await self.store.last_id()
                break
            except Exception:  # noqa: BLE001 - the store may come up later; the app still serves
                log.warning("event store %s not ready; retrying", getattr(self.store, "url", "?"), exc_info=True)
                await anyio.sleep(RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)])
                failures += 1
        self.started = True
        task_status.started()
        failures = 0
        while True:
            try:
                batch = await self.store.read_after(self.cursor, READ_LIMIT)
                if batch:
                    if self.cursor is not None and self.store.is_evicted(self.cursor, await self.store.first_id()):
                        self._drop_everyone()
                    self._publish(batch)
                    failures = 0
                    await self._let_streams_write()
                    if len(batch) == READ_LIMIT:
                        await anyio.lowlevel.checkpoint()
                        continue
                await self.store.wait_after(self.cursor, IDLE_WAIT_S)
                failures = 0
            except Exception:  # noqa: BLE001 - a store hiccup must not end live streaming for good
                log.warning("reading the event store failed; retrying", exc_info=True)
                await anyio.sleep(RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)])
                failures += 1
