"""The event-store protocol every store implements, and the id arithmetic they share.

A store keeps the newest events of every run and gives each appended event an id that is strictly greater than
every id it gave before. Ids are opaque strings to clients; inside LLMMixer they compare by :func:`id_key`:
``"42"`` (memory, sqlite) is ``(42, 0)`` and ``"1732500000123-3"`` (a Redis Streams entry id) is
``(1732500000123, 3)``. Never compare them as strings: ``"10" < "9"``.

Retention is bounded (a ring, a trimmed table, a MAXLEN stream). A reader who asks for events after an id the store
no longer holds learns it from :meth:`EventStore.is_evicted` and must say so (the SSE stream sends ``event: gap``).
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ...servers.core.errors import InvalidInputError
from ...servers.core.events import Event

__all__ = ["EventStore", "StoreBase", "id_key", "parse_int_id", "DEFAULT_MAXLEN", "READ_LIMIT"]

DEFAULT_MAXLEN = 10_000
READ_LIMIT = 1000
_INT_ID = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_INT_MAX = 2**63 - 1


@runtime_checkable
class EventStore(Protocol):
    """What the orchestrator writes to and the SSE stream reads from."""

    url: str

    async def open(self) -> None:
        """Connect / create tables. Idempotent."""

    async def close(self) -> None: ...

    async def append(self, event: Event) -> Event:
        """Store ``event``; returns it with its new id (strictly greater than every earlier id)."""

    async def read_after(self, after: str | None, limit: int = READ_LIMIT, run: str | None = None) -> list[Event]:
        """Events with an id greater than ``after`` (``None``: from the oldest retained), oldest first, at most
        ``limit``; ``run`` keeps only that run's events."""

    async def first_id(self) -> str | None:
        """The oldest retained id, ``None`` when empty."""

    async def last_id(self) -> str | None:
        """The newest id, ``None`` when empty."""

    async def wait_after(self, after: str | None, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an event newer than ``after`` exists; True if one does."""

    def parse_id(self, raw: str) -> str:
        """Validate a client-given id (``Last-Event-ID``).

        Raises:
            InvalidInputError: ``raw`` is not an id this store could have given.
        """

    def is_evicted(self, after: str, first: str | None) -> bool:
        """True when events newer than ``after`` may have been dropped before ``first`` (the oldest retained)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


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


class StoreBase:
    """The async context manager every store shares: ``async with open_store(url) as store: ...``."""

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
