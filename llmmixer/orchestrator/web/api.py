"""The HTTP API: start runs and commands, read a run's result or state, cancel, list servers, health.

Every route calls the run service on ``request.app.state.runs`` (the orchestrator's, or one that refuses when
the web app serves a store alone), through the :class:`~llmmixer.orchestrator.service.RunService` protocol; nothing
here is module-level state.

Errors are the shared tree's wire form, ``{"error": {"kind", "message", ...}}``, with a status that fits the kind
(:data:`STATUS_BY_KIND`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
from pydantic import Field, field_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import ErrorKind, InvalidInputError, LLMMixerError, NotFoundError, ServerError
from ...servers.core.images import ImageInput
from ..requests import R, AgentRequest, AskRequest, CommandRequest, validate_request
from ..service import RunService
from .meta import get_meta, server_facts
from .security import BodyTooLarge, error_response, too_large_response

__all__ = ["STATUS_BY_KIND", "WebAskRequest", "routes", "exception_handlers", "status_for", "json_body"]

MAX_WAIT_S = 60.0
MAX_JSON_DEPTH = 32  # a request is a prompt and a few fields; deeper nesting is an attack, not a request

STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.INVALID_INPUT: 400,
    ErrorKind.CONTEXT_LENGTH: 400,
    ErrorKind.AUTH: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.POLICY: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CANCELLED: 409,
    ErrorKind.CONFLICT: 409,
    ErrorKind.CONTENT_FILTER: 422,
    ErrorKind.INVALID_OUTPUT: 502,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.QUOTA: 429,
    ErrorKind.BUDGET: 402,
    ErrorKind.SERVER: 500,
    ErrorKind.CONNECTION: 502,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


def status_for(error: LLMMixerError) -> int:
    return STATUS_BY_KIND.get(error.kind, 500)


class WebImage(ImageInput):
    """An image over HTTP: a URL or base64 only; a web client has no business naming files on this machine."""

    url: str | None = Field(default=None, max_length=8192)
    data: str | None = Field(default=None, max_length=8_000_000)

    @field_validator("path")
    @classmethod
    def _no_path(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("over HTTP an image is a url or base64 data, not a path on the server")


class WebAskRequest(AskRequest):
    """``POST /api/runs``: :class:`AskRequest`, with images as URLs or base64 only."""

    images: list[WebImage] | None = Field(default=None, max_length=20)  # type: ignore[assignment]


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iterative: a deep body cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


async def json_body(request: Request, model: type[R]) -> R:
    """Parse and validate the body, turning every failure into an ``invalid_input`` error that says what is wrong.

    Raises:
        InvalidInputError: not JSON, not an object, or a field of the wrong type/size.
        BodyTooLarge: the body crossed the cap while being read.
    """
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise InvalidInputError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer past Python's digit limit
        raise InvalidInputError(f"request body is not valid JSON: {str(exc)[:200]}") from None
    if _depth_exceeds(payload, MAX_JSON_DEPTH):
        raise InvalidInputError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
    return validate_request(model, payload)


def _runs(request: Request) -> RunService:
    runs: RunService = request.app.state.runs
    return runs


def _run_id(request: Request) -> str:
    run_id = request.path_params["run_id"]
    _runs(request).check_id(run_id)
    return run_id


async def start_run(request: Request) -> Response:
    runs = _runs(request)
    run_id = await runs.start(await json_body(request, WebAskRequest))
    started = {"run_id": run_id}
    conversation_id = (await runs.snapshot(run_id)).get("conversation_id")
    if conversation_id:
        started["conversation_id"] = conversation_id
    return JSONResponse(started, status_code=202)


async def start_command(request: Request) -> Response:
    run_id = await _runs(request).start(await json_body(request, CommandRequest))
    return JSONResponse({"run_id": run_id}, status_code=202)


async def start_agents(request: Request) -> Response:
    run_id = await _runs(request).start(await json_body(request, AgentRequest))
    return JSONResponse({"run_id": run_id}, status_code=202)


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"wait must be a number of seconds, got {raw[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"wait must be a non-negative number of seconds, got {raw[:40]!r}")
    return min(value, MAX_WAIT_S)


def _running(snapshot: dict[str, Any]) -> bool:
    return snapshot.get("status") in ("pending", "running")


async def get_run(request: Request) -> Response:
    """The final result when the run is over, else its state. ``?wait=S`` blocks up to S seconds for the end."""
    wait_s = _wait_seconds(request)
    run_id = _run_id(request)
    runs = _runs(request)
    snapshot = await runs.snapshot(run_id)
    if wait_s > 0 and _running(snapshot):
        await runs.wait(run_id, wait_s)
        snapshot = await runs.snapshot(run_id)
    return JSONResponse(snapshot)


async def cancel_run(request: Request) -> Response:
    run_id = _run_id(request)
    return JSONResponse(await _runs(request).cancel(run_id))


LIST_PARAMS = {"limit", "offset", "q", "conversation_id"}


async def list_runs(request: Request) -> Response:
    """The newest runs in the run log, newest first, as summaries with their prompts (the dashboard's history).

    ``?limit=N&offset=M`` pages (``next_offset`` is set while more may follow); ``q`` searches prompts and answers;
    ``conversation_id`` keeps one conversation.
    """
    params = request.query_params
    unknown = sorted(set(params) - LIST_PARAMS)
    if unknown:
        raise InvalidInputError(f"GET /api/runs does not take {', '.join(unknown)}; it takes "
                                f"{', '.join(sorted(LIST_PARAMS))}", details={"unknown_arguments": unknown})
    raw = params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidInputError(f"limit must be an integer from 1 to 1000, got {raw[:40]!r}")
    raw_offset = params.get("offset", "0")
    if not raw_offset.isdigit():
        raise InvalidInputError(f"offset must be a non-negative integer, got {raw_offset[:40]!r}")
    limit, offset = int(raw), int(raw_offset)
    page = await _runs(request).list_runs(limit=limit, offset=offset, query=params.get("q") or None,
                                          conversation_id=params.get("conversation_id") or None)
    return JSONResponse({"runs": page, "offset": offset,
                         "next_offset": offset + len(page) if len(page) == limit else None})


async def list_models(request: Request) -> Response:
    """Every model server's models, aliases and prices (``llmmixer models``). ``?cached=1`` answers from the model
    cache without asking any server (each server's last listing, else its manifest's default model; ``listed_at``
    is None for the latter): the dashboard's model pickers read it."""
    cached = request.query_params.get("cached", "0")
    if cached not in ("0", "1"):
        raise InvalidInputError(f"cached must be 0 or 1, got {cached[:40]!r}")
    runs = request.app.state.runs
    if cached == "1":
        from ..model_cache import cached_listings

        return JSONResponse({"servers": cached_listings(runs.config)})
    from ..models import list_all_models

    return JSONResponse({"servers": await list_all_models(runs)})


async def list_servers(request: Request) -> Response:
    """Each server's live status, with what its manifest says about it (role, title, vendor, default model).
    ``?wait=0`` answers at once with what is known (``starting`` while a server comes up; the dashboard polls);
    without it, every server is checked first."""
    runs = _runs(request)
    if request.query_params.get("wait") == "0":
        statuses = runs.server_statuses()
    else:
        statuses = await runs.servers()
    return JSONResponse({"servers": [{**server_facts(s.get("source") or s["name"]), **s} for s in statuses]})


HEALTH_PROBE_S = 2.0


async def healthz(request: Request) -> Response:
    """200 ``{"ok": true, ...}``; 503 ``{"ok": false, "store": "<url>: <reason>"}`` while the event store fails
    (its writer's last write failed, or a read now does not answer within :data:`HEALTH_PROBE_S`), and 503 with
    ``"runs": "<reason>"`` while a new run could not start (the run scheduler stopped, the spool is full)."""
    state = request.app.state
    store = state.store
    reason = getattr(getattr(store, "health", None), "write_error", None)
    if reason is None:
        try:
            with anyio.fail_after(HEALTH_PROBE_S):
                await store.last_id()
        except TimeoutError:
            reason = f"no answer within {HEALTH_PROBE_S:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure to read is what this endpoint reports
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    body: dict[str, Any] = {"ok": reason is None, "store": store.url if reason is None else f"{store.url}: {reason}",
                            "streams": state.streams.open_count}
    refusal = getattr(getattr(state, "runs", None), "start_refusal", lambda: None)()
    if refusal is not None:  # a store that answers is not enough: runs must be able to start
        body.update(ok=False, runs=refusal)
        reason = reason or refusal
    health = getattr(store, "health", None)
    if health is not None and (health.spooled or health.lost):
        body.update(spooled=health.spooled, lost=health.lost)
    return JSONResponse(body, status_code=200 if reason is None else 503)


# ---- errors -------------------------------------------------------------------------------------------------------


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMMixerError)
    status = status_for(exc)
    # A refusal that says when to come back (a full queue: 429) says it in the standard header too.
    retry = {"Retry-After": str(math.ceil(exc.retry_after_s))} if exc.retry_after_s and status in (429, 503) else None
    return error_response(exc, status, headers=retry)


async def _on_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    return too_large_response(exc.cap)


async def _on_http(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown path, wrong method) in our JSON shape instead of plain text."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: LLMMixerError = NotFoundError(f"no such endpoint: {request.method} {request.url.path}")
    else:
        error = InvalidInputError(f"{request.method} {request.url.path}: {exc.detail}")
    return error_response(error, exc.status_code, headers=dict(exc.headers or {}))


async def _on_crash(request: Request, exc: Exception) -> Response:
    """A bug, not a classified error: say so in our shape, and keep the details (which could quote secrets from a
    config) in the server log, never in the response."""
    return error_response(ServerError("internal error; see the server log"), 500)


def exception_handlers() -> dict[Any, Any]:
    return {LLMMixerError: _on_error, BodyTooLarge: _on_too_large, HTTPException: _on_http, Exception: _on_crash}


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/runs", start_run, methods=["POST"]),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/commands", start_command, methods=["POST"]),
        Route("/api/agents", start_agents, methods=["POST"]),
        Route("/api/runs/{run_id}", get_run, methods=["GET"]),
        Route("/api/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
        Route("/api/servers", list_servers, methods=["GET"]),
        Route("/api/models", list_models, methods=["GET"]),
        Route("/api/meta", get_meta, methods=["GET"]),
    ]
