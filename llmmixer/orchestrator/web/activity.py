"""Who is using the service right now: the requests in flight (an open ``/events`` stream counts until it closes),
and when that last changed. The resident service's idle exit reads it (:mod:`llmmixer.orchestrator.resident`)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Activity", "ActivityMiddleware"]


class Activity:
    def __init__(self) -> None:
        self.open = 0
        self.changed = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last request ended, or 0 while one is open."""
        return 0.0 if self.open else time.monotonic() - self.changed


class ActivityMiddleware:
    """Pure ASGI: counts each HTTP request from its start to its end; nothing per chunk."""

    def __init__(self, app: ASGIApp, activity: Activity) -> None:
        self.app = app
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        activity = self.activity
        activity.open += 1
        activity.changed = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            activity.open -= 1
            activity.changed = time.monotonic()
