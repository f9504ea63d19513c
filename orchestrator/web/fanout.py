"""One reader of the event store per app, fanning each new event out to every open ``/events`` stream.

:class:`EventHub` tails the store (``read_after`` + ``wait_after``), encodes each event as SSE bytes once, and
pushes the shared bytes into every :class:`Subscription`. However many clients are connected, the store is read
once per batch and each event is encoded once.

Each subscription is a bounded queue. A client that stops reading fills it; on overflow the subscription is
closed and its connection cut (the client comes back with its ``Last-Event-ID`` and catches up from the store),
so a slow client can neither grow the server's memory nor hold up anyone else. Queued items are references to
the shared bytes, so a full queue costs pointers, not copies.

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

__all__ = ["EventHub", "Subscription", "Encoded", "encode_event", "DEFAULT_MAX_QUEUE"]

log = logging.getLogger("llmmixer.web")

DEFAULT_MAX_QUEUE = 10_000  # events a client may fall behind before its connection is cut
IDLE_WAIT_S = 5.0  # the store is re-checked at least this often even without a wake-up
RETRY_BACKOFF_S = (0.05, 0.2, 1.0, 2.0)


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


class Subscription:
    """A bounded queue of encoded events for one stream, optionally one run's only."""

    def __init__(self, start: str | None, run: str | None, max_queue: int,
                 on_overflow: Callable[[], None] | None = None) -> None:
        self.start = start  # the hub's cursor when this subscription began; newer events come through the queue
        self.run = run
        self.max_queue = max_queue
        self.closed = False
        self.overflowed = False
        self._items: deque[Encoded] = deque()
        self._wake = anyio.Event()
        self._on_overflow = on_overflow

    def push(self, items: Sequence[Encoded]) -> bool:
        """Queue ``items`` (this run's only); returns False when the subscription is over (closed or overflowed)."""
        if self.closed:
            return False
        if self.run is not None:
            items = [item for item in items if item.run == self.run]
            if not items:
                return True
        if len(self._items) + len(items) > self.max_queue:
            self.overflowed = True
            self.close()
            if self._on_overflow is not None:
                self._on_overflow()
            return False
        self._items.extend(items)
        self._wake.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._wake.set()

    async def get(self) -> list[Encoded]:
        """Everything queued, waiting until there is something; ``[]`` once closed."""
        while not self._items and not self.closed:
            await self._wake.wait()
            self._wake = anyio.Event()
        items = list(self._items)
        self._items.clear()
        return items


class EventHub:
    """The store's single tail for this app (see the module docstring). Start it with ``await tg.start(hub.run)``."""

    def __init__(self, store: EventStore, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.store = store
        self.max_queue = max_queue
        self.cursor: str | None = None
        self.started = False
        self._subs: set[Subscription] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def subscribe(self, run: str | None = None, on_overflow: Callable[[], None] | None = None) -> Subscription:
        if not self.started:
            raise RuntimeError("the event hub is not running (the app's lifespan starts it)")
        sub = Subscription(self.cursor, run, self.max_queue, on_overflow)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.close()

    def _publish(self, batch: list[Event]) -> None:
        encoded = [encode_event(event) for event in batch]
        # No await from here to the end: the cursor and the pushes change together (the hand-over invariant).
        self.cursor = batch[-1].id
        for sub in list(self._subs):
            if not sub.push(encoded):
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
                    if len(batch) == READ_LIMIT:
                        await anyio.lowlevel.checkpoint()
                        continue
                await self.store.wait_after(self.cursor, IDLE_WAIT_S)
                failures = 0
            except Exception:  # noqa: BLE001 - a store hiccup must not end live streaming for good
                log.warning("reading the event store failed; retrying", exc_info=True)
                await anyio.sleep(RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)])
                failures += 1
