"""One Starlette app serving the three emulated vendor APIs side by side, plus a control API.

Which vendors are served, at which prefix, and which base-URL variable points an SDK at each, comes from the
server manifests (``ServerManifest.emulator``, ``base_url_var``), so a plugin's emulator is mounted like the
bundled ones. For the bundled servers:

    ANTHROPIC_BASE_URL      = http://127.0.0.1:PORT/anthropic        (SDK appends /v1/messages, /v1/models)
    OPENAI_BASE_URL         = http://127.0.0.1:PORT/openai/v1        (SDK appends /responses, /chat/completions, /models)
    GOOGLE_GEMINI_BASE_URL  = http://127.0.0.1:PORT/gemini           (SDK appends /v1beta/models/...)

Control API (JSON):

    PUT    /_emulator/behaviour/{vendor}   set the vendor's default Behaviour (body: Behaviour fields)
    POST   /_emulator/queue/{vendor}       queue one-shot behaviours (body: a list), used by the next requests in order
    GET    /_emulator/requests[?vendor=][&probes=1]   the request records (see recorder.py); ``probes=1`` adds
                                    the requests of the base URLs themselves
    PUT    /_emulator/script/{vendor}      scripted agent turns for the vendor (body: {"turns": [...]}, script.py)
    GET    /_emulator/tool_results[?vendor=]   every tool result the agents sent back (script.py)
    POST   /_emulator/reset                default behaviours, empty queues, no scripts, no records

A request to a path no vendor serves is recorded with outcome ``unserved`` (and answered 404), so a test can
assert that a client called nothing the emulators do not know.

Each vendor lives in its own module exposing ``routes(ctx: EmulatorContext) -> list[BaseRoute]``; vendor quirks
stay there.
"""

from __future__ import annotations

import importlib
import random
import threading
import time
from collections import deque
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ..core.manifest import EmulatorInfo, load_manifests
from .behaviour import Behaviour
from .recorder import Recorder, RequestRecord
from .script import Script, ToolResults, Turn

__all__ = ["vendors", "EmulatorContext", "create_app", "base_urls"]


def vendors() -> dict[str, EmulatorInfo]:
    """Emulated vendor name (control API, URL prefix) -> what the manifest of the server using it says."""
    return {m.emulator.name: m.emulator for m in load_manifests() if m.emulator is not None}


def base_urls(root: str) -> dict[str, str]:
    """The SDK base-URL environment for an emulator served at ``root`` (``http://127.0.0.1:PORT``)."""
    root = root.rstrip("/")
    return {m.base_url_var: f"{root}{m.emulator.base_path}" for m in load_manifests()
            if m.emulator is not None and m.base_url_var}


class EmulatorContext:
    """Shared state handed to each vendor module: behaviours, the recorder and a seeded RNG."""

    def __init__(self, seed: int | None = None) -> None:
        self.recorder = Recorder()
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._defaults: dict[str, Behaviour] = {}
        self._queues: dict[str, deque[Behaviour]] = {}
        self._scripts: dict[str, Script] = {}
        self.tool_results = ToolResults()

    def behaviour_for(self, vendor: str) -> Behaviour:
        """The next queued one-shot behaviour for ``vendor``, else its default."""
        with self._lock:
            queue = self._queues.get(vendor)
            if queue:
                return queue.popleft()
            return self._defaults.get(vendor) or Behaviour()

    def set_default(self, vendor: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._defaults[vendor] = behaviour

    def enqueue(self, vendor: str, behaviours: list[Behaviour]) -> None:
        with self._lock:
            self._queues.setdefault(vendor, deque()).extend(behaviours)

    def set_script(self, vendor: str, script: Script | None) -> None:
        with self._lock:
            if script is None:
                self._scripts.pop(vendor, None)
            else:
                self._scripts[vendor] = script

    def scripted_turn(self, vendor: str, record: RequestRecord, results: list[tuple[str, str | None, str]],
                      declares_tools: bool) -> Turn | None:
        """Record the tool results a request carries; the scripted turn that answers it, if any.

        ``results`` are ``(call_id, tool name, output)`` as the vendor module read them from the request.
        """
        self.tool_results.add(vendor, record.id, results)
        with self._lock:
            script = self._scripts.get(vendor)
        if script is None or not declares_tools:
            return None
        return script.turn_for(len({cid for cid, _, _ in results}))  # a repeated result (Gemini CLI resumed) is one

    def reset(self) -> None:
        with self._lock:
            self._defaults.clear()
            self._queues.clear()
            self._scripts.clear()
        self.recorder.clear()
        self.tool_results.clear()

    def open_record(self, vendor: str, request: Request, body: Any) -> RequestRecord:
        peer = f"{request.client.host}:{request.client.port}" if request.client else None
        return self.recorder.open(vendor, request.method, request.url.path, body, peer)


def _control_routes(ctx: EmulatorContext) -> list[BaseRoute]:
    def vendor_of(request: Request) -> str:
        vendor = request.path_params["vendor"]
        known = vendors()
        if vendor not in known:
            raise ValueError(f"unknown vendor {vendor!r}; one of {sorted(known)}")
        return vendor

    async def put_behaviour(request: Request) -> JSONResponse:
        try:
            vendor = vendor_of(request)
            behaviour = Behaviour.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ctx.set_default(vendor, behaviour)
        return JSONResponse(behaviour.model_dump())

    async def post_queue(request: Request) -> JSONResponse:
        try:
            vendor = vendor_of(request)
            items = await request.json()
            behaviours = [Behaviour.model_validate(item) for item in (items if isinstance(items, list) else [items])]
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ctx.enqueue(vendor, behaviours)
        return JSONResponse({"queued": len(behaviours)})

    async def get_requests(request: Request) -> JSONResponse:
        return JSONResponse(ctx.recorder.list(request.query_params.get("vendor"),
                                              probes=request.query_params.get("probes") == "1"))

    async def post_reset(request: Request) -> JSONResponse:
        ctx.reset()
        return JSONResponse({"ok": True})

    async def put_script(request: Request) -> JSONResponse:
        try:
            vendor = vendor_of(request)
            body = await request.json()
            script = None if body is None else Script.model_validate(body)
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ctx.set_script(vendor, script)
        return JSONResponse({"turns": 0 if script is None else len(script.turns)})

    async def get_tool_results(request: Request) -> JSONResponse:
        return JSONResponse(ctx.tool_results.list(request.query_params.get("vendor")))

    return [
        Route("/_emulator/behaviour/{vendor}", put_behaviour, methods=["PUT"]),
        Route("/_emulator/queue/{vendor}", post_queue, methods=["POST"]),
        Route("/_emulator/requests", get_requests, methods=["GET"]),
        Route("/_emulator/reset", post_reset, methods=["POST"]),
        Route("/_emulator/script/{vendor}", put_script, methods=["PUT"]),
        Route("/_emulator/tool_results", get_tool_results, methods=["GET"]),
    ]


def _unserved_route(ctx: EmulatorContext) -> BaseRoute:
    """Anything no vendor serves: recorded (outcome ``unserved``) and answered 404."""

    async def unserved(request: Request) -> JSONResponse:
        body = (await request.body()).decode("utf-8", errors="replace")[:2000] or None
        record = ctx.recorder.open("unserved", request.method, request.url.path, body)
        record.outcome = "unserved"
        return JSONResponse({"error": f"the emulators do not serve {request.method} {request.url.path}"},
                            status_code=404)

    return Route("/{path:path}", unserved, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


def _base_url_routes(ctx: EmulatorContext, served: tuple[str, ...]) -> list[BaseRoute]:
    """Each API's base URL itself, as the real hosts answer it: ``404`` with no body. A client that opens a
    connection ahead of its next call (a HEAD of the base URL) lands here, and the record shows which connection
    (``peer``) it opened."""
    routes: list[BaseRoute] = []
    known = vendors()
    for vendor in served:
        path = known[vendor].base_path

        async def base(request: Request, vendor: str = vendor) -> Response:
            record = ctx.open_record(vendor, request, None)
            record.probe, record.outcome, record.ended_at = True, "completed", time.time()
            return Response(status_code=404)

        routes += [Route(path, base, methods=["GET", "HEAD"]), Route(path + "/", base, methods=["GET", "HEAD"])]
    return routes


def create_app(ctx: EmulatorContext | None = None, served: tuple[str, ...] | None = None) -> Starlette:
    """The app serving ``served`` (emulated vendor names; default every registered one) and the control API."""
    ctx = ctx or EmulatorContext()
    known = vendors()
    served = tuple(known) if served is None else served
    routes = [*_control_routes(ctx), *_base_url_routes(ctx, served)]
    for vendor in served:
        module = importlib.import_module(known[vendor].module)
        routes.append(Mount(f"/{vendor}", routes=[*module.routes(ctx), _unserved_route(ctx)]))
    routes.append(_unserved_route(ctx))
    app = Starlette(routes=routes)
    app.state.emulator = ctx
    return app
