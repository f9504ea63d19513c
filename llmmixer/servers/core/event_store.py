"""Resumable Streamable HTTP: the event store behind every server's ``/mcp``.

With an event store the SDK gives each SSE event of a POST stream an ``id``, opens the stream with a priming event
(an id and empty data) carrying ``retry:`` (:data:`RETRY_MS`), and answers a ``GET`` with ``Last-Event-ID`` by
replaying what followed that id, then continuing live. So a host whose connection drops mid-call (a proxy timeout,
a laptop changing networks) reconnects and gets every progress delta exactly once, then the result: the same
"no duplicates, no gaps" promise as the dashboard's SSE. (Only clients of 2025-11-25 or later get priming events;
the SDK decides that.)

A resumed stream is served from the store alone: :meth:`MemoryEventStore.replay_events_after` sends what followed
the client's id, then follows the stream as new events are stored, in id order, until the request's response has
gone out, and then ends the connection (returning no stream id, so the SDK does not also attach its live tail).
The SDK's own hand-over from replay to live tail has a window (its comment says so) in which an event is stored
but sent to neither; a host lost one or two progress deltas in it. One source, one order: none lost, none twice.

The store is memory-only and bounded: each stream keeps its last :data:`MAX_EVENTS_PER_STREAM` events and the
store its :data:`MAX_STREAMS` most recent streams (a stream is one request, so an old one is a finished call no
client will resume). An id that has been dropped replays nothing; the client's request then fails the way a lost
connection does without resumption, never with a silent hole inside a stream.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque

import anyio
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse

__all__ = ["MemoryEventStore", "RETRY_MS", "MAX_EVENTS_PER_STREAM", "MAX_STREAMS"]

RETRY_MS = 1000  # the reconnection delay a client is told (SSE ``retry:``)
MAX_EVENTS_PER_STREAM = 10_000  # a long generate streams a few thousand deltas
MAX_STREAMS = 256


class MemoryEventStore(EventStore):
    """Events per stream, in order, with ids ``"<n>"`` from one counter (opaque to clients)."""

    def __init__(self, *, max_events_per_stream: int = MAX_EVENTS_PER_STREAM, max_streams: int = MAX_STREAMS) -> None:
        self._counter = itertools.count(1)
        self._max_events = max_events_per_stream
        self._max_streams = max_streams
        self._streams: OrderedDict[StreamId, deque[tuple[int, JSONRPCMessage | None]]] = OrderedDict()
        self._stream_of: dict[int, StreamId] = {}
        self._stored: dict[StreamId, anyio.Event] = {}  # set (and replaced) when a stream gets an event

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        number = next(self._counter)
        events = self._streams.get(stream_id)
        if events is None:
            events = self._streams[stream_id] = deque()
            while len(self._streams) > self._max_streams:
                gone, dropped = self._streams.popitem(last=False)
                for old, _message in dropped:
                    self._stream_of.pop(old, None)
                if (stored := self._stored.pop(gone, None)) is not None:
                    stored.set()  # a follower wakes up and finds its stream gone
        else:
            self._streams.move_to_end(stream_id)
        if len(events) >= self._max_events:
            old, _message = events.popleft()
            self._stream_of.pop(old, None)
        events.append((number, message))
        self._stream_of[number] = stream_id
        if (stored := self._stored.pop(stream_id, None)) is not None:
            stored.set()
        return str(number)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send every event after ``last_event_id`` in its stream, and follow the stream until its response is out.

        Returns None: the connection then ends (after the response, or for an unknown or dropped id at once).
        """
        try:
            last = int(last_event_id)
        except ValueError:
            return None
        stream_id = self._stream_of.get(last)
        if stream_id is None:
            return None
        while (events := self._streams.get(stream_id)) is not None:
            pending = [(number, message) for number, message in events if number > last]
            if not pending:
                stored = self._stored.setdefault(stream_id, anyio.Event())
                await stored.wait()
                continue
            for number, message in pending:
                last = number
                if message is None:
                    continue
                await send_callback(EventMessage(message, str(number)))
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    return None
        return None
