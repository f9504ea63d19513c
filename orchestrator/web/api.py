"""The HTTP API: start runs and commands, read a run's result or state, cancel, list servers, health.

Every route calls the ``runs`` service on ``request.app.state.runs`` (the orchestrator's, or one that refuses when
the web app serves a store alone); nothing here is module-level state. Its interface::

    await runs.start_ask(prompt=, models=, mode=, system=) -> run_id
    await runs.start_command(command=, cwd=None, timeout_s=None) -> run_id
    await runs.start_agents(AgentRequest) -> run_id   # POST /api/agents (orchestrator/agents)
    await runs.snapshot(run_id) -> dict            # NotFoundError for an unknown run
    await runs.cancel(run_id) -> dict
    await runs.servers() -> list[dict]
    runs.check_id(run_id)                          # InvalidInputError / NotFoundError
    optional: await runs.wait(run_id, timeout_s) (for ?wait=S), runs.run_ids() (for the history list)

Errors are the shared tree's wire form, ``{"error": {"kind", "message", ...}}``, with a status that fits the kind
(:data:`STATUS_BY_KIND`).
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import ErrorKind, InvalidInputError, LLMMixerError, NotFoundError, ServerError
from .security import BodyTooLarge, error_response, too_large_response

__all__ = ["STATUS_BY_KIND", "AskRequest", "CommandRequest", "routes", "exception_handlers", "status_for"]

MAX_PROMPT_CHARS = 200_000
MAX_WAIT_S = 60.0
MAX_JSON_DEPTH = 32  # a request is a prompt and a few fields; deeper nesting is an attack, not a request
SUMMARY_KEYS = ("run_id", "kind", "mode", "status", "winner", "total_cost_usd", "exit_code")

STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.INVALID_INPUT: 400,
    ErrorKind.CONTEXT_LENGTH: 400,
    ErrorKind.AUTH: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.POLICY: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CANCELLED: 409,
    ErrorKind.CONTENT_FILTER: 422,
    ErrorKind.INVALID_OUTPUT: 502,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.QUOTA: 429,
    ErrorKind.SERVER: 500,
    ErrorKind.CONNECTION: 502,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


def status_for(error: LLMMixerError) -> int:
    return STATUS_BY_KIND.get(error.kind, 500)


class AskRequest(BaseModel):
    """``POST /api/runs``. ``models`` is a list or a comma-separated string; absent means the configured default."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    models: list[str] | None = None
    mode: Literal["all", "race", "first-token", "hedge", "fallback"] | None = None
    system: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value or None


class CommandRequest(BaseModel):
    """``POST /api/commands``: one shell command line for the PTY runner (its policy decides)."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=100_000)
    cwd: str | None = Field(default=None, max_length=4096)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)


class AgentsRequest(BaseModel):
    """``POST /api/agents``: coding agents on a task in a git repository (``llmmixer agent``)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    check: str = Field(min_length=1, max_length=100_000)
    agents: list[str] | None = None
    mode: Literal["race", "all"] = "race"
    cwd: str | None = Field(default=None, max_length=4096)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)
    apply: bool = False

    @field_validator("agents", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value or None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


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


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
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
    if not isinstance(payload, dict):
        raise InvalidInputError("request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]} for err in exc.errors()]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
        raise InvalidInputError(f"invalid request: {summary}", details={"problems": problems}) from None


def _runs(request: Request) -> Any:
    return request.app.state.runs


def _run_id(request: Request) -> str:
    run_id = request.path_params["run_id"]
    _runs(request).check_id(run_id)
    return run_id


async def start_run(request: Request) -> Response:
    body: AskRequest = await _json_body(request, AskRequest)
    run_id = await _runs(request).start_ask(prompt=body.prompt, models=body.models, mode=body.mode,
                                            system=body.system)
    return JSONResponse({"run_id": run_id}, status_code=202)


async def start_command(request: Request) -> Response:
    body: CommandRequest = await _json_body(request, CommandRequest)
    run_id = await _runs(request).start_command(command=body.command, cwd=body.cwd, timeout_s=body.timeout_s)
    return JSONResponse({"run_id": run_id}, status_code=202)


async def start_agents(request: Request) -> Response:
    from ..agents import CLIS, AgentRequest

    body: AgentsRequest = await _json_body(request, AgentsRequest)
    run_id = await _runs(request).start_agents(AgentRequest(
        task=body.task, check=body.check, agents=body.agents or list(CLIS), mode=body.mode, cwd=body.cwd or ".",
        timeout_s=body.timeout_s, apply=body.apply))
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
    if wait_s > 0 and _running(snapshot) and hasattr(runs, "wait"):
        await runs.wait(run_id, wait_s)
        snapshot = await runs.snapshot(run_id)
    return JSONResponse(snapshot)


async def cancel_run(request: Request) -> Response:
    run_id = _run_id(request)
    return JSONResponse(await _runs(request).cancel(run_id))


async def list_runs(request: Request) -> Response:
    """The newest runs this process holds, newest first, as summaries (for the dashboard's history)."""
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidInputError(f"limit must be an integer from 1 to 1000, got {raw[:40]!r}")
    runs = _runs(request)
    run_ids = getattr(runs, "run_ids", None)
    ids = list(await _maybe_await(run_ids()))[-int(raw):] if run_ids is not None else []
    summaries = []
    for run_id in reversed(ids):
        try:
            snapshot = await runs.snapshot(run_id)
        except NotFoundError:
            continue
        summaries.append({key: snapshot[key] for key in SUMMARY_KEYS if key in snapshot})
    return JSONResponse({"runs": summaries})


async def list_servers(request: Request) -> Response:
    return JSONResponse({"servers": await _runs(request).servers()})


async def healthz(request: Request) -> Response:
    state = request.app.state
    return JSONResponse({"ok": True, "store": state.store.url, "streams": state.streams.open_count})


# ---- errors -------------------------------------------------------------------------------------------------------


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMMixerError)
    return error_response(exc, status_for(exc))


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
    ]
