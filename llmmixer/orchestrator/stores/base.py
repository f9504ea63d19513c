"""The event-store protocol every store implements, and the id arithmetic they share.

A store keeps the newest events of every run and gives each appended event an id that is strictly greater than
every id it gave before. Ids are opaque strings to clients; inside LLMMixer they compare by :func:`id_key`:
``"42"`` (memory, sqlite) is ``(42, 0)`` and ``"1732500000123-3"`` (a Redis Streams entry id) is
``(1732500000123, 3)``. Never compare them as strings: ``"10" < "9"``.

Retention is bounded (a ring, a trimmed table, a MAXLEN stream). A reader who asks for events after an id the store
no longer holds learns it from :meth:`EventStore.is_evicted` and must say so (the SSE stream sends ``event: gap``).

Writes go in groups: :meth:`EventStore.append_many` stores events that are ready together in one transaction (one
SQLite transaction, one Redis round trip), all or nothing, ids in the order given. A write that fails raises one of
the shared errors and stores nothing; the orchestrator's :class:`~.writer.StoreWriter` keeps those events in its
spool, retries, and records a ``store.gap`` event when it has to give some up. :attr:`StoreBase.health` is where a
store's failing state is kept for ``/healthz``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ...servers.core.errors import InvalidInputError
from ...servers.core.events import Event

__all__ = ["EventStore", "StoreBase", "StoreHealth", "WriteToken", "id_key", "parse_int_id", "parse_size",
           "approx_size", "event_size", "DEFAULT_MAXLEN", "DEFAULT_MEMORY_BYTES", "READ_LIMIT"]

DEFAULT_MAXLEN = 10_000
DEFAULT_MEMORY_BYTES = 64 << 20  # the memory ring also holds at most this many bytes of events (about)
READ_LIMIT = 1000
_INT_ID = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_INT_MAX = 2**63 - 1


@runtime_checkable
class EventStore(Protocol):
    """What the orchestrator writes to and the SSE stream reads from."""

    url: str

    async def open(self) -> None:
        """Connect / create tables. Idempotent."""
        ...

    async def close(self) -> None: ...

    health: StoreHealth

    async def append(self, event: Event) -> Event:
        """Store ``event``; returns it with its new id (strictly greater than every earlier id)."""
        ...

    async def append_many(self, events: Sequence[Event], token: WriteToken | None = None) -> list[Event | None]:
        """Store ``events`` in one transaction, ids increasing in the order given; all or nothing.

        ``token`` makes a retried write idempotent where the store could have applied a write whose reply was lost
        (Redis): an event whose ``token.first + index`` the writer already stored is skipped (``None`` in the result).

        Raises:
            UnavailableError: (or a subclass) nothing was stored.
        """
        ...

    async def reconnect(self) -> None:
        """Drop and reopen connections after a failure (a restarted Redis, a replaced database file)."""
        ...

    def take_incidents(self) -> list[str]:
        """What the store lost on its own since the last call (a database file deleted under it), each a reason
        the writer records as ``store.gap`` events."""
        ...

    async def read_after(self, after: str | None, limit: int = READ_LIMIT, run: str | None = None) -> list[Event]:
        """Events with an id greater than ``after`` (``None``: from the oldest retained), oldest first, at most
        ``limit``; ``run`` keeps only that run's events."""
        ...

    async def first_id(self) -> str | None:
        """The oldest retained id, ``None`` when empty."""
        ...

    async def last_id(self) -> str | None:
        """The newest id, ``None`` when empty."""
        ...

    async def wait_after(self, after: str | None, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an event newer than ``after`` exists; True if one does."""
        ...

    def parse_id(self, raw: str) -> str:
        """Validate a client-given id (``Last-Event-ID``).

        Raises:
            InvalidInputError: ``raw`` is not an id this store could have given.
        """
        ...

    def is_evicted(self, after: str, first: str | None) -> bool:
        """True when events newer than ``after`` may have been dropped before ``first`` (the oldest retained)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteToken:
    """Who writes (one id per writer) and the write sequence number of the first event of a batch."""

    writer: str
    first: int


@dataclass
class StoreHealth:
    """Whether the store is failing, as the writer last found it (``/healthz`` reports it)."""

    write_error: str | None = None  # why the last write failed; None once one succeeds
    failing_since: float | None = None
    spooled: int = 0  # events accepted but not yet stored
    lost: int = 0  # events given up for good (each covered by a store.gap event)

    @property
    def ok(self) -> bool:
        return self.write_error is None

    def failed(self, reason: str) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()
        self.write_error = reason

    def recovered(self) -> None:
        self.write_error = None
        self.failing_since = None


def approx_size(value: Any, depth: int = 0) -> int:
    """About how many bytes ``value`` takes as JSON: string lengths plus a little per item. For byte budgets
    (the memory ring, the writer's spool), where an exact ``json.dumps`` per event would cost more than it saves."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        if depth > 8:
            return 64
        return 2 + sum(len(key) + 4 + approx_size(item, depth + 1) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        if depth > 8:
            return 64
        return 2 + sum(1 + approx_size(item, depth + 1) for item in value)
    return 8


def event_size(event: Event) -> int:
    return 64 + len(event.run) + len(event.source) + approx_size(event.data)


def id_key(event_id: str) -> tuple[int, int]:
    """The sort key of a store id: ``"42"`` -> ``(42, 0)``, ``"1732-3"`` -> ``(1732, 3)``."""
    head, _, tail = event_id.partition("-")
    return int(head), int(tail or 0)


def parse_int_id(raw: str) -> str:
    """Validate a decimal id (memory and sqlite stores).

    Raises:
        InvalidInputError: not a non-negative decimal integer that fits 64 bits.
    """
    text = raw.strip() if isinstance(raw, str) else raw
    if not isinstance(text, str) or not _INT_ID.match(text) or int(text) > _INT_MAX:
        raise InvalidInputError(f"malformed event id {str(raw)[:40]!r}: expected a decimal event id such as '42'")
    return text


def parse_maxlen(value: str | None, url: str, default: int | None) -> int | None:
    """``?maxlen=N`` of a store URL.

    Raises:
        InvalidInputError: not a positive integer.
    """
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise InvalidInputError(f"bad event store URL {url!r}: maxlen must be a positive integer, got {value!r}")
    return int(value)


def parse_size(value: str | None, url: str, default: int | None) -> int | None:
    """``?max_bytes=N`` of a store URL: bytes, or with a ``k``/``m``/``g`` suffix (``64m``).

    Raises:
        InvalidInputError: not a positive size.
    """
    if value is None:
        return default
    text = value.strip().lower()
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if factor > 1 else text
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidInputError(f"bad event store URL {url!r}: max_bytes must be a positive size such as 1048576 "
                                f"or 64m, got {value!r}")
    return int(digits) * factor


class StoreBase:
    """What every store shares: ``async with open_store(url) as store: ...``, :meth:`append` as a batch of one,
    and :meth:`reconnect` as close-then-open."""

    health: StoreHealth

    async def append_many(self, events: Sequence[Event],  # pragma: no cover - overridden
                          token: WriteToken | None = None) -> list[Event | None]:
        raise NotImplementedError

    async def append(self, event: Event) -> Event:
        stored = (await self.append_many([event]))[0]
        assert stored is not None
        return stored

    async def reconnect(self) -> None:
        await self.close()
        await self.open()

    def take_incidents(self) -> list[str]:
        return []

    async def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'url', '?')!r})"
