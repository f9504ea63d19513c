"""The web app: HTTP API, SSE ``/events`` and the dashboard, composed into one Starlette app.

:func:`create_app` takes the two collaborators it serves: ``runs`` (the orchestrator's run service, see
:mod:`.api`) and ``store`` (an event store). Their owner opens and closes them; the app's lifespan only makes sure
the store is open (``open()`` is idempotent) and runs the :class:`~.fanout.EventHub` that tails it. There is no
module-level client or config anywhere: everything lives on ``app.state`` (``runs``, ``store``, ``hub``,
``streams``, ``sse``, ``policy``).

The ASGI stack, outermost first::

    SecurityMiddleware        Host / Origin / token / body cap (security.py)
    StreamTrackingMiddleware  tracks open /events streams so they can be cut (streams.py)
    Starlette                 routes: /healthz, /api/*, /events, /static/*, /

:func:`running` serves an app inside the current task (tests, bench, demo); :func:`serve` until interrupted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..service import RunService
from ..stores.base import EventStore
from .. import gateway
from . import agent_actions, api, observability, sse
from ..gateway.models import Listings
from .activity import Activity, ActivityMiddleware
from .fanout import DEFAULT_MAX_QUEUE, EventHub
from .security import DEFAULT_MAX_BODY, SecurityMiddleware, SecurityPolicy
from .streams import StreamRegistry, StreamTrackingMiddleware

__all__ = ["create_app", "running", "serve", "static_dir"]


def static_dir() -> str:
    """The dashboard's files, shipped inside the package (no build step)."""
    return str(resources.files("llmmixer.orchestrator.web") / "static")


async def _index(request: Request) -> Response:
    # no-store: the shell is tiny and a stale app.js after an upgrade would misread new events.
    return FileResponse(f"{static_dir()}/index.html", headers={"Cache-Control": "no-store"})


def create_app(
    runs: RunService,
    store: EventStore,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    keepalive_s: float = 15.0,
    retry_ms: int = 1000,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_body: int = DEFAULT_MAX_BODY,
    extra_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    activity: Activity | None = None,
) -> Starlette:
    """Build the web app for a server bound to ``host``.

    Args:
        runs: the run service the API calls (:class:`~llmmixer.orchestrator.service.RunService`).
        store: the event store ``/events`` streams from; opened by the caller (or here, idempotently).
        host: the bind address; decides the Host check and whether a token is required.
        token: the API/SSE token; ``None`` reads ``$LLMMIXER_TOKEN``.
        keepalive_s: seconds between keepalive comments on an idle stream (0: none).
        retry_ms: the ``retry:`` sent to each stream.
        max_queue: events a stream may fall behind live before its connection is cut.
        max_body: request body cap in bytes (413 beyond).
        extra_origins: browser origins allowed besides the server's own (e.g. a proxy's public URL).
        allowed_hosts: Host names answered besides loopback and, on a wildcard bind, the machine's own
            (``$LLMMIXER_ALLOWED_HOSTS`` adds more).
        activity: counts the requests in flight (the resident service's idle exit reads it).

    Raises:
        BindRefused: ``host`` is not loopback and no token is set.
    """
    policy = SecurityPolicy.for_bind(host, token=token, max_body=max_body, extra_origins=extra_origins,
                                     allowed_hosts=allowed_hosts)
    streams = StreamRegistry()
    hub = EventHub(store, max_queue=max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            try:
                yield
            finally:
                # Cut open streams before the owner closes the store, so none reads a closed store.
                streams.drop_all()
                tg.cancel_scope.cancel()

    routes: list[BaseRoute] = [
        *api.routes(),
        *agent_actions.routes(),
        *observability.routes(),
        *gateway.routes(),
        *sse.routes(),
        Route("/", _index, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=static_dir()), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=api.exception_handlers(),
                    middleware=[*([Middleware(ActivityMiddleware, activity=activity)] if activity else []),
                                Middleware(SecurityMiddleware, policy=policy),
                                Middleware(StreamTrackingMiddleware, registry=streams)])
    app.state.runs = runs
    app.state.store = store
    app.state.hub = hub
    app.state.streams = streams
    app.state.policy = policy
    app.state.listings = Listings()
    app.state.sse = sse.SSESettings(keepalive_s=keepalive_s, retry_ms=retry_ms)
    return app


class _Server(uvicorn.Server):
    """uvicorn's server with a readiness event, and open event streams cut first when it shuts down (otherwise
    the graceful shutdown waits its full timeout for streams that never end)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None] | None = None, *,
                 own_signals: bool = True) -> None:
        super().__init__(config)
        self.ready = anyio.Event()
        self.url: str | None = None
        self._on_ready = on_ready
        self._own_signals = own_signals

    def capture_signals(self) -> Any:
        # When the caller handles SIGTERM/SIGINT itself (and stops us through `shutdown`), uvicorn must neither
        # take the handlers over nor re-raise the signal after serving, which would kill the process before the
        # caller has finished its runs.
        return super().capture_signals() if self._own_signals else contextlib.nullcontext()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            bound = self.servers[0].sockets[0].getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            self.url = f"http://{shown}:{bound[1]}"
            state = getattr(self.config.app, "state", None)
            runs, policy = getattr(state, "runs", None), getattr(state, "policy", None)
            if runs is not None and hasattr(runs, "gateway") and policy is not None:
                runs.gateway = (self.url, policy.token or "llmmixer")  # agents given a gateway model use it
            if self._on_ready is not None:
                self._on_ready(self.url)
        self.ready.set()

    async def shutdown(self, sockets: Any = None) -> None:
        streams = getattr(getattr(self.config.app, "state", None), "streams", None)
        if isinstance(streams, StreamRegistry):
            streams.drop_all()
        await super().shutdown(sockets)


def _config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=3,
                          lifespan="on")


@contextlib.asynccontextmanager
async def running(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                  log_level: str = "warning") -> AsyncIterator[str]:
    """Serve ``app`` on uvicorn inside the current task; yields its base URL (``port=0`` picks a free port).

    Leaving the block shuts the server down (open event streams are cut first).

    Raises:
        RuntimeError: the server did not start (port taken, lifespan failed).
    """
    server = _Server(_config(app, host, port, log_level))
    async with anyio.create_task_group() as tg:
        async def run() -> None:
            try:
                await server.serve()
            finally:
                server.ready.set()  # unblock the waiter when startup failed

        tg.start_soon(run)
        await server.ready.wait()
        if not server.started or server.url is None:
            raise RuntimeError(f"the web server did not start on {host}:{port}")
        try:
            yield server.url
        finally:
            server.should_exit = True


async def serve(runs: RunService, store: EventStore, *, host: str = "127.0.0.1", port: int = 8765,
                token: str | None = None, log_level: str = "warning",
                on_ready: Callable[[str], None] | None = None, shutdown: anyio.Event | None = None,
                **options: Any) -> None:
    """Serve the web app until SIGINT/SIGTERM (``llmmixer serve``), or, when ``shutdown`` is given, until it is
    set (the caller then handles the signals). ``on_ready(url)`` is called once listening.

    Raises:
        BindRefused: ``host`` is not loopback and no token is set (checked before binding).
    """
    app = create_app(runs, store, host=host, token=token, **options)
    server = _Server(_config(app, host, port, log_level), on_ready, own_signals=shutdown is None)
    if shutdown is None:
        await server.serve()
        return
    async with anyio.create_task_group() as tg:
        async def stop_when_asked() -> None:
            await shutdown.wait()
            server.should_exit = True

        tg.start_soon(stop_when_asked)
        await server.serve()
        tg.cancel_scope.cancel()
