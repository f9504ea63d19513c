"""What the emulators saw: every request, and when each stream started, sent its first byte and ended.

Times are wall-clock (``time.time()``) so a test or bench in another process can compare them with its own clock.
``outcome`` tells how the stream ended: ``completed`` (we sent the whole reply), ``client_closed`` (the client
closed the connection first; ``closed_at`` is when we saw it), ``error`` (an injected error), ``reset``, ``hang``.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestRecord", "Recorder"]


@dataclass
class RequestRecord:
    id: int
    vendor: str
    method: str
    path: str
    body: Any
    started_at: float = field(default_factory=time.time)
    first_byte_at: float | None = None
    ended_at: float | None = None
    closed_at: float | None = None
    outcome: str = "open"
    tokens_sent: int = 0
    # The client's address and port: two requests with the same ``peer`` came over the same TCP connection.
    peer: str | None = None
    # A request to the API's base URL itself (a client opening a connection ahead of its next call), not a call
    # of the API: listed only when asked for.
    probe: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Thread-safe: the emulator may run in a background thread while a test reads it."""

    def __init__(self, limit: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._records: list[RequestRecord] = []
        self._limit = limit

    def open(self, vendor: str, method: str, path: str, body: Any, peer: str | None = None) -> RequestRecord:
        with self._lock:
            record = RequestRecord(id=next(self._ids), vendor=vendor, method=method, path=path, body=body, peer=peer)
            self._records.append(record)
            del self._records[: max(0, len(self._records) - self._limit)]
            return record

    def list(self, vendor: str | None = None, probes: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._records
                    if (vendor is None or r.vendor == vendor) and (probes or not r.probe)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
