"""``GET /events`` and ``GET /events?run=ID``: the event store as Server-Sent Events.

Each stream sends ``retry:`` once, then every event as ``id:`` (its store id), ``event:`` (its type) and one
``data:`` line (the event's JSON), and a ``: keepalive`` comment when idle (every 15 s by default).

Without an id, ``/events`` is live from now on, and ``/events?run=ID`` starts at that run's first event (a client
that started a run and then connects misses nothing). A finished run whose first events the store has evicted
starts with ``event: gap`` (``last_event_id`` empty) before what is left of it.

Resuming: the ``Last-Event-ID`` header (which browsers send on their own reconnects) or, for clients that cannot
set headers, ``?last_event_id=``; the header wins when both are present, since a browser keeps the original query
string on reconnect. The stream replays every stored event strictly after that id, then continues live, with no
duplicate and no gap (see :mod:`.fanout` for the hand-over). When the id is older than what the store retains, or
unknown to it (a memory store after a restart), the stream first sends ``event: gap`` with
``{"last_event_id", "first_available"}`` and then everything it still has: never a silent hole. A malformed id is
a 400 with the JSON error body, before the stream starts.

Encoding goes through ``sse_starlette``'s :class:`ServerSentEvent`; several events that are ready at once are
written in one chunk. Divergence from a plain ``EventSourceResponse`` body: the body yields pre-encoded bytes,
so each live event is encoded once for all clients (by the hub), and the events the hub publishes together are
joined once, so every stream sends the same bytes object (nothing is encoded or copied per client).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import InvalidInputError
from ..stores.base import EventStore, id_key
from .fanout import EventHub, Subscription, encode_event
from .streams import STREAM_SCOPE_KEY

__all__ = ["SSESettings", "routes", "events_endpoint", "RUN_FILTER"]

# Replay chunks start small and double: a client that drops again soon costs little, a long catch-up goes fast.
FIRST_REPLAY_BATCH = 50
MAX_REPLAY_BATCH = 1000
RUN_FILTER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class SSESettings:
    keepalive_s: float = 15.0  # 0 turns keepalive comments off
    retry_ms: int = 1000  # what EventSource waits before reconnecting


def _gap(after: str, first: str | None) -> bytes:
    body = json.dumps({"last_event_id": after, "first_available": first}, separators=(",", ":"))
    return ServerSentEvent(data=body, event="gap", sep="\n").encode()


async def _run_evicted(store: EventStore, run: str) -> bool:
    """A finished run (its record says so) whose first event the store no longer holds: its replay starts with a
    ``gap``, never with a silent hole. A run in flight may simply not have its first event stored yet."""
    head = await store.read_after(None, 1, run)
    if head and head[0].type == "run.started":
        return False
    get_run = getattr(store, "get_run", None)
    record = await get_run(run) if get_run is not None else None
    return record is not None and record.get("status") not in (None, "running")


async def _replay(store: EventStore, sub: Subscription, after: str | None,
                  run: str | None) -> AsyncIterator[tuple[bytes, str | None]]:
    """Stored events after ``after`` up to the subscription's start, as ``(chunk, last id in it)``."""
    if sub.start is None:
        return
    stop = id_key(sub.start)
    cursor = after
    size = FIRST_REPLAY_BATCH
    while cursor is None or id_key(cursor) < stop:
        batch = await store.read_after(cursor, size, run)
        ready = [encode_event(event) for event in batch if id_key(event.id or "") <= stop]
        if not ready:
            return
        cursor = batch[len(ready) - 1].id
        yield b"".join(item.chunk for item in ready), cursor
        if len(ready) < len(batch) or len(batch) < size:
            return
        size = min(size * 2, MAX_REPLAY_BATCH)


async def _stream(store: EventStore, hub: EventHub, after: str | None, run: str | None, settings: SSESettings,
                  on_overflow: object) -> AsyncIterator[bytes]:
    # Subscribe before reading the store: whatever is appended from here on reaches the queue.
    sub = hub.subscribe(run, on_overflow)  # type: ignore[arg-type]
    try:
        yield ServerSentEvent(retry=settings.retry_ms, sep="\n").encode()
        floor: tuple[int, int] | None = None
        cursor = after
        if after is None and run is None:
            # Live only: whatever the store holds now is history, even if the hub has not read it yet.
            newest = await store.last_id()
            floor = id_key(newest) if newest is not None else None
        elif after is None:
            # Following one run: it is wanted from its first event, also the ones sent before we connected.
            assert run is not None
            if await _run_evicted(store, run):
                yield _gap("", await store.first_id())
            async for chunk, last_sent in _replay(store, sub, None, run):
                yield chunk
                floor = id_key(last_sent or "")
        else:
            floor = id_key(after)
            first, last = await store.first_id(), await store.last_id()
            unknown = floor > (0, 0) and (last is None or floor > id_key(last))
            if unknown or store.is_evicted(after, first):
                yield _gap(after, first)
                if unknown:  # an id from another store (a restarted memory store): all it has is new here
                    floor, cursor = None, None
            async for chunk, last_sent in _replay(store, sub, cursor, run):
                yield chunk
                floor = id_key(last_sent or "")
        while True:
            batches = await sub.get_batches()
            if not batches:
                return  # overflowed or dropped: the client resumes from its Last-Event-ID
            if floor is not None and batches[0].first <= floor:
                batches = [b for b in (batch.after(floor) for batch in batches) if b is not None]
                if not batches:
                    continue
                floor = None  # the replay's floor is behind us: every later batch is newer
            # Usually one batch per wake-up, whose bytes every stream shares: nothing is copied per client.
            yield batches[0].chunk if len(batches) == 1 else b"".join(batch.chunk for batch in batches)
    finally:
        hub.unsubscribe(sub)


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keepalive", sep="\n")


async def events_endpoint(request: Request) -> EventSourceResponse:
    """Raises:
        InvalidInputError: a malformed ``Last-Event-ID`` / ``last_event_id`` or ``run``.
    """
    state = request.app.state
    store: EventStore = state.store
    run = request.query_params.get("run") or None
    if run is not None and not RUN_FILTER.match(run):
        raise InvalidInputError(f"malformed run id {run[:40]!r}: expected the id returned when the run started")
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or None
    after = store.parse_id(raw) if raw is not None else None

    cancel_scope = request.scope.get(STREAM_SCOPE_KEY)
    registry = state.streams

    def on_overflow() -> None:
        if cancel_scope is not None:
            registry.cut_for_overflow(cancel_scope)

    settings: SSESettings = state.sse
    return EventSourceResponse(_stream(store, state.hub, after, run, settings, on_overflow),
                               ping=settings.keepalive_s, ping_message_factory=_keepalive, sep="\n")


def routes() -> list[BaseRoute]:
    return [Route("/events", events_endpoint, methods=["GET"])]
