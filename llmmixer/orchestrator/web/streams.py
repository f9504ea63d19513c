"""Open event streams, tracked so they can be cut: on shutdown, on a slow client's overflow, and on purpose in
resilience tests.

:class:`StreamTrackingMiddleware` runs every request under ``/events`` inside its own cancel scope, registered
with the app's :class:`StreamRegistry` and handed to the endpoint as ``scope["llmmixer.stream"]``. Cancelling it
ends the request without completing its response, so the server closes the TCP connection exactly as a network
failure would and the client must come back with its ``Last-Event-ID``. That is the behaviour the dashboard has
to survive, so we trigger it for real instead of imitating it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["StreamRegistry", "StreamTrackingMiddleware", "STREAM_SCOPE_KEY"]

STREAM_SCOPE_KEY = "llmmixer.stream"


class StreamRegistry:
    """The ``/events`` streams in flight (see the module docstring). Lives on ``app.state.streams``."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._changed = anyio.Event()
        self.dropped = 0  # cut by drop_all()
        self.overflowed = 0  # cut because the client fell too far behind
        self.served = 0  # opened since start

    @property
    def open_count(self) -> int:
        return len(self._scopes)

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def add(self, scope: anyio.CancelScope) -> None:
        self._scopes.add(scope)
        self.served += 1
        self._touch()

    def discard(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)
        self._touch()

    def drop_all(self) -> int:
        """Cut every open event stream now; returns how many were cut. Call it on the server's event loop."""
        scopes = list(self._scopes)
        for scope in scopes:
            scope.cancel()
        self.dropped += len(scopes)
        return len(scopes)

    def cut_for_overflow(self, scope: anyio.CancelScope) -> None:
        if not scope.cancel_called:
            self.overflowed += 1
            scope.cancel()

    async def wait_until(self, condition: Callable[[StreamRegistry], bool]) -> None:
        """Wait until ``condition(registry)`` holds (checked whenever a stream opens or closes)."""
        while not condition(self):
            await self._changed.wait()


class StreamTrackingMiddleware:
    """Runs each request under ``prefix`` in a cancel scope registered with ``registry``."""

    def __init__(self, app: ASGIApp, registry: StreamRegistry, prefix: str = "/events") -> None:
        self.app = app
        self.registry = registry
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope() as cancel_scope:
            self.registry.add(cancel_scope)
            scope[STREAM_SCOPE_KEY] = cancel_scope
            try:
                await self.app(scope, receive, send)
            finally:
                self.registry.discard(cancel_scope)
        # Cut before the response completed: returning now makes the server close the connection (no clean end
        # of the chunked body), which is what a client sees when the network drops.
