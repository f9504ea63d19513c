"""Abandoned Streamable HTTP calls end: a ``tools/call`` whose client went away and did not come back is cancelled.

With resumable streams (:mod:`.event_store`) the SDK keeps a request's handler running when its POST stream drops,
so that the client can reconnect with ``Last-Event-ID`` and get the rest. A client that never comes back left the
call streaming to nobody, its vendor request open to the end. :class:`AbandonedCalls` sits in front of the SDK's
app and watches each ``tools/call`` POST of a session: when the client disconnects before the response went out,
it waits :data:`RESUME_WINDOW_S`; unless a ``GET`` with ``Last-Event-ID`` resumed the session meanwhile, it sends
the SDK, in process, the ``notifications/cancelled`` the client would have sent. The handler is cancelled as on an
explicit cancel, and the adapter closes its upstream.

(The 2026-07-28 protocol needs none of this: there the SDK cancels a handler when its POST is aborted.)
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AbandonedCalls", "RESUME_WINDOW_S"]

RESUME_WINDOW_S = 10.0  # how long a dropped call waits for its client to resume (ten of its 1 s retries)
MAX_PEEK_BYTES = 1 << 20  # a call's body is read for its id and method only up to this size


class AbandonedCalls:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, window_s: float = RESUME_WINDOW_S) -> None:
        self.app = app
        self.window_s = window_s
        self._resumed: dict[str, float] = {}  # session id -> when a stream of it was last resumed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        session = headers.get("mcp-session-id")
        if scope["method"] == "GET" and session and headers.get("last-event-id"):
            self._resumed[session] = time.monotonic()
            while len(self._resumed) > 1024:
                self._resumed.pop(next(iter(self._resumed)))
        if scope["method"] != "POST" or not session:
            await self.app(scope, receive, send)
            return
        body, replay = await _read_body(receive)
        request_id = _call_id(body)
        if request_id is None:
            await self.app(scope, replay, send)
            return
        state = {"answered": False, "gone": False}

        async def watched_receive() -> Message:
            message = await replay()
            if message["type"] == "http.disconnect":
                state["gone"] = True
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["answered"] = True
            try:
                await send(message)
            except OSError:
                state["gone"] = True
                raise

        dropped_at = None
        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            if state["gone"] and not state["answered"]:
                dropped_at = time.monotonic()
        if dropped_at is None:
            return
        await anyio.sleep(self.window_s)
        if self._resumed.get(session, 0.0) >= dropped_at:
            return  # the client came back for the rest
        await self._cancel(scope, request_id)

    async def _cancel(self, scope: Scope, request_id: Any) -> None:
        """What the client would have sent: ``notifications/cancelled`` for its request, on its session."""
        body = json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": request_id, "reason": "the client went away and did not resume"}
                           }).encode()
        keep = {b"host", b"mcp-session-id", b"mcp-protocol-version", b"authorization", b"origin"}
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() in keep]
        headers += [(b"content-type", b"application/json"), (b"accept", b"application/json, text/event-stream"),
                    (b"content-length", str(len(body)).encode())]
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(_message: Message) -> None:
            return None

        with anyio.move_on_after(5):
            await self.app({**scope, "headers": headers}, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (up to :data:`MAX_PEEK_BYTES` of it is kept for a look), and a ``receive`` that hands the
    app every message again."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        if len(body) <= MAX_PEEK_BYTES:
            body += message.get("body", b"")
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return dict(await receive())

    return bytes(body) if len(body) <= MAX_PEEK_BYTES else b"", replay


def _call_id(body: bytes) -> Any:
    """The id of a ``tools/call`` request in ``body``, else None."""
    if not body or b"tools/call" not in body:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("method") == "tools/call" and isinstance(message.get("id"), (str, int)):
        return message["id"]
    return None
