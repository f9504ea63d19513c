"""A raw ASGI streaming response that watches the client while it streams.

Starlette's ``StreamingResponse`` notices a closed client only on its next write, so a stream that is hanging or
waiting for its first token would record the close late (or never). Here a watcher task waits on
``http.disconnect`` the whole time and stamps ``closed_at`` the moment the client goes away; that timestamp is what
tests and bench use to prove a lost race really closed its upstream request.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable

import anyio
from starlette.types import Receive, Scope, Send

from .behaviour import Behaviour
from .recorder import RequestRecord

__all__ = ["Hang", "Reset", "StreamingBody", "cut_inside_utf8", "sse_event", "pace"]


class Hang(Exception):
    """Raised by a chunk generator to stop sending and wait, silently, until the client gives up."""


class Reset(Exception):
    """Raised by a chunk generator to drop the connection without finishing the body."""


def cut_inside_utf8(chunk: bytes) -> list[bytes]:
    """Split ``chunk`` in two inside its first multi-byte UTF-8 sequence, if it has one."""
    for index, byte in enumerate(chunk):
        if byte >= 0xC0:  # lead byte of a multi-byte sequence
            return [chunk[: index + 1], chunk[index + 1:]]
    return [chunk]


class StreamingBody:
    """``await StreamingBody(...)(scope, receive, send)`` streams ``chunks`` and records how the stream ended."""

    def __init__(
        self,
        chunks: Callable[[], AsyncIterator[bytes]],
        record: RequestRecord,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        split_utf8: bool = True,
    ) -> None:
        self.chunks = chunks
        self.record = record
        self.status = status
        self.headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                        **(headers or {})}
        self.split_utf8 = split_utf8

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self.record
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                if record.outcome in ("open", "hang"):
                    record.closed_at = time.time()
                    record.outcome = "client_closed"
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            await send({"type": "http.response.start", "status": self.status,
                        "headers": [(k.encode(), v.encode()) for k, v in self.headers.items()]})
            try:
                async for chunk in self.chunks():
                    if record.first_byte_at is None:
                        record.first_byte_at = time.time()
                    for piece in cut_inside_utf8(chunk) if self.split_utf8 else [chunk]:
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
            except Hang:
                record.outcome = "hang"
                await anyio.sleep_forever()
            except Reset:
                record.outcome = "reset"
                record.ended_at = time.time()
                # Returning with the body unfinished makes the server drop the connection mid-message.
                tg.cancel_scope.cancel()
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            if record.outcome == "open":
                record.outcome = "completed"
            record.ended_at = time.time()
            tg.cancel_scope.cancel()


def sse_event(data: str, event: str | None = None, line_end: str = "\n") -> bytes:
    """One server-sent event, as vendors frame them (Gemini uses ``\\r\\n`` line ends)."""
    head = f"event: {event}{line_end}" if event else ""
    return f"{head}data: {data}{line_end}{line_end}".encode()


async def pace(tokens: list[str], behaviour: Behaviour, rng: random.Random, record: RequestRecord
               ) -> AsyncIterator[str]:
    """Yield reply tokens on the behaviour's schedule; raise :class:`Hang` / :class:`Reset` where it says.

    Stops early (without raising) when ``error_after_tokens`` is reached, so the vendor module can render its own
    mid-stream error event; ``record.tokens_sent`` tells it how far the stream got.
    """
    await anyio.sleep(behaviour.first_token_delay_s(rng))
    for index, token in enumerate(tokens):
        if behaviour.hang_after_tokens == index:
            raise Hang
        if behaviour.reset_after_tokens == index:
            raise Reset
        if behaviour.error is not None and behaviour.error_after_tokens == index:
            return
        if index and behaviour.inter_token_ms:
            await anyio.sleep(behaviour.inter_token_ms / 1000)
        record.tokens_sent += 1
        yield token
