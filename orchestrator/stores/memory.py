"""The default store: a bounded ring in this process's memory (``memory`` or ``memory://?maxlen=N``).

Ids are 1, 2, 3, ... so event ``i`` lives at slot ``(i - 1) % maxlen`` and a read after any id is an index
computation, not a scan. When the ring is full the oldest event is overwritten; memory stays flat however many
events pass through. Nothing survives the process.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from ...servers.core.events import Event
from .base import DEFAULT_MAXLEN, READ_LIMIT, StoreBase, parse_int_id
from .runlog import MemoryRunLog

__all__ = ["MemoryStore"]


class MemoryStore(MemoryRunLog, StoreBase):
    def __init__(self, maxlen: int = DEFAULT_MAXLEN, url: str | None = None) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be positive")
        self.url = url or (f"memory://?maxlen={maxlen}" if maxlen != DEFAULT_MAXLEN else "memory")
        self.maxlen = maxlen
        self._ring: list[Event | None] = [None] * maxlen
        self._next = 1  # the id the next append gets
        # Replaced on every append that someone waits for, so each waiter sees a fresh, unset event.
        self._appended: anyio.Event | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _first(self) -> int:
        return max(1, self._next - self.maxlen)

    async def append(self, event: Event) -> Event:
        stored = event.with_id(self._next)
        self._ring[(self._next - 1) % self.maxlen] = stored
        self._next += 1
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
            return [self._ring[(i - 1) % self.maxlen] for i in range(start, stop)]  # type: ignore[misc]
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
        return str(self._first()) if self._next > 1 else None

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
