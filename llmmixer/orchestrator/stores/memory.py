"""The default store: a bounded ring in this process's memory (``memory`` or ``memory://?maxlen=N&max_bytes=M``).

Ids are 1, 2, 3, ... so event ``i`` lives at slot ``(i - 1) % maxlen`` and a read after any id is an index
computation, not a scan. The ring holds at most ``maxlen`` events *and* about ``max_bytes`` of them (64 MiB by
default, measured by :func:`~.base.event_size`): whichever bound is reached first evicts the oldest, so a few
huge events (a command's megabytes of output) cannot grow memory any more than many small ones. Evicted ids are
reported as gaps like any other retention gap. Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel

from ...servers.core.events import Event
from .base import DEFAULT_MAXLEN, DEFAULT_MEMORY_BYTES, READ_LIMIT, StoreBase, StoreHealth, WriteToken, \
    event_size, parse_int_id
from .runlog import MemoryRunLog

__all__ = ["MemoryStore"]


class MemoryStore(MemoryRunLog, StoreBase):
    def __init__(self, maxlen: int = DEFAULT_MAXLEN, url: str | None = None, *,
                 max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if maxlen < 1 or max_bytes < 1:
            raise ValueError("maxlen and max_bytes must be positive")
        default = maxlen == DEFAULT_MAXLEN and max_bytes == DEFAULT_MEMORY_BYTES
        self.url = url or ("memory" if default else f"memory://?maxlen={maxlen}&max_bytes={max_bytes}")
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.health = StoreHealth()
        self._ring: list[Event | None] = [None] * maxlen
        self._sizes: list[int] = [0] * maxlen
        self._bytes = 0
        self._first_held = 1  # the oldest id still held (== _next when empty)
        self._next = 1  # the id the next append gets
        # Replaced on every append that someone waits for, so each waiter sees a fresh, unset event.
        self._appended: anyio.Event | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reconnect(self) -> None:
        return None

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def _first(self) -> int:
        return self._first_held

    def _evict_oldest(self) -> None:
        slot = (self._first_held - 1) % self.maxlen
        self._bytes -= self._sizes[slot]
        self._ring[slot] = None
        self._sizes[slot] = 0
        self._first_held += 1

    def _store(self, event: Event) -> Event:
        if self._next - self._first_held >= self.maxlen:
            self._evict_oldest()
        stored = event.with_id(self._next)
        size = event_size(event)
        slot = (self._next - 1) % self.maxlen
        self._ring[slot] = stored
        self._sizes[slot] = size
        self._bytes += size
        self._next += 1
        # Keep the newest event even if it alone is over the budget: a store that holds nothing helps no one.
        while self._bytes > self.max_bytes and self._first_held < self._next - 1:
            self._evict_oldest()
        return stored

    async def append_many(self, events: Sequence[Event], token: WriteToken | None = None) -> list[Event | None]:
        stored: list[Event | None] = [self._store(event) for event in events]
        if stored and self._appended is not None:
            self._appended.set()
            self._appended = None
        return stored

    async def append(self, event: Event) -> Event:
        stored = self._store(event)
        if self._appended is not None:
            self._appended.set()
            self._appended = None
        return stored

    async def read_after(self, after: str | None, limit: int = READ_LIMIT, run: str | None = None) -> list[Event]:
        # A read is a scheduling point, as it is for every store doing I/O: a reader looping over a long backlog
        # must not starve the event loop (nor miss its client's disconnect).
        await anyio.lowlevel.checkpoint()
        start = max(self._first(), (int(after) + 1) if after is not None else 1)
        stop = self._next
        if run is None:
            stop = min(stop, start + limit)
            return [e for e in (self._ring[(i - 1) % self.maxlen] for i in range(start, stop)) if e is not None]
        found: list[Event] = []
        for i in range(start, stop):
            event = self._ring[(i - 1) % self.maxlen]
            assert event is not None
            if event.run == run:
                found.append(event)
                if len(found) >= limit:
                    break
        return found

    async def first_id(self) -> str | None:
        return str(self._first()) if self._next > self._first_held else None

    async def last_id(self) -> str | None:
        return str(self._next - 1) if self._next > 1 else None

    async def wait_after(self, after: str | None, timeout: float) -> bool:
        floor = int(after) if after is not None else 0
        await anyio.lowlevel.checkpoint()
        with anyio.move_on_after(timeout):
            while self._next - 1 <= floor:
                if self._appended is None:
                    self._appended = anyio.Event()
                await self._appended.wait()
        return self._next - 1 > floor

    def parse_id(self, raw: str) -> str:
        return parse_int_id(raw)

    def is_evicted(self, after: str, first: str | None) -> bool:
        # Ids are consecutive: nothing is missing when the oldest retained is the one right after `after`.
        return first is not None and int(after) < int(first) - 1
