"""What every dialect's endpoints share: the token in the dialect's own key header, the body read into the
dialect's model, and one call run from request to response (errors before the first byte as an HTTP error, after
it as the dialect's stream error).

A :class:`Dialect` is the few things that differ: how an error looks, how an answer looks whole, and how it looks
as a stream.
"""

from __future__ import annotations

import abc
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ...servers.core.errors import AuthError, InvalidInputError, LLMMixerError
from ..web.api import json_body
from .calls import Answer, GatewayRequest, Started, TextOut, answer, headers_of, start, status_of
from .models import Listings

__all__ = ["Dialect", "supplied_token", "check_token", "read_body", "validated", "listings_of", "serve_call",
           "run_headers", "guarded", "sse"]

Model = TypeVar("Model", bound=BaseModel)


def supplied_token(request: Request) -> str | None:
    """The token as each dialect's clients send their API key: ``Authorization: Bearer``, ``x-api-key``
    (Anthropic), ``x-goog-api-key`` or ``?key=`` (Gemini)."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return (request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
            or request.query_params.get("key"))


def check_token(request: Request) -> None:
    """Raises ``AuthError`` (401) unless the service's token came in one of the dialects' key headers."""
    token = getattr(request.app.state.policy, "token", None)
    if not token:
        return
    supplied = supplied_token(request) or ""
    if not hmac.compare_digest(supplied.encode(), token.encode()):
        raise AuthError("wrong or missing token: send the service token (LLMMIXER_TOKEN) as your API key"
                        if supplied else "missing token: send the service token (LLMMIXER_TOKEN) as your API key")


async def read_body(request: Request, model: type[Model]) -> Model:
    """The body as the dialect's ``model``; an ``invalid_input`` error names each field that is wrong."""
    body: Model = await json_body(request, model)
    return body


def validated(request: dict[str, Any]) -> GatewayRequest:
    """The normalized request; a wrong part is an ``invalid_input`` naming the field."""
    try:
        return GatewayRequest.model_validate(request)
    except ValidationError as exc:
        summary = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors())
        raise InvalidInputError(f"invalid request: {summary}") from None


def listings_of(request: Request) -> Listings:
    state = request.app.state
    if not hasattr(state, "listings"):
        state.listings = Listings()
    listings: Listings = state.listings
    return listings


def run_headers(run_id: str, winner: str | None = None, cost_usd: float | None = None) -> dict[str, str]:
    headers = {"x-llmmixer-run-id": run_id}
    if winner is not None:
        headers["x-llmmixer-winner"] = winner
    if cost_usd is not None:
        headers["x-llmmixer-cost-usd"] = f"{cost_usd:.10f}".rstrip("0").rstrip(".") or "0"
    return headers


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line when named)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class Dialect(abc.ABC):
    """One vendor's wire on the gateway."""

    name: str

    @abc.abstractmethod
    def error_body(self, error: LLMMixerError, status: int) -> dict[str, Any]:
        """The dialect's error object for ``error`` answered with ``status``."""

    def status(self, error: LLMMixerError) -> int:
        return status_of(error)

    def error_response(self, error: LLMMixerError) -> Response:
        status = self.status(error)
        return JSONResponse(self.error_body(error, status), status_code=status, headers=headers_of(error))

    @abc.abstractmethod
    def whole(self, request: GatewayRequest, reply: Answer) -> dict[str, Any]:
        """The non-streaming response body."""

    @abc.abstractmethod
    def stream(self, request: GatewayRequest, items: AsyncIterator[TextOut | Answer]) -> AsyncIterator[bytes]:
        """The streaming response body (server-sent events) for ``items``; a failure inside ``items`` ends it
        with the dialect's error event (:meth:`stream_error`)."""

    @abc.abstractmethod
    def stream_error(self, error: LLMMixerError) -> bytes:
        """The dialect's error event, once bytes have gone out."""


async def guarded(request: Request, dialect: Dialect, call: Callable[[], Awaitable[Response]]) -> Response:
    """Check the token, then ``call()``; any classified error is answered in ``dialect``'s shape."""
    try:
        check_token(request)
        return await call()
    except LLMMixerError as error:
        return dialect.error_response(error)


async def serve_call(request: Request, dialect: Dialect, gateway_request: GatewayRequest) -> Response:
    """Run one call and answer it in ``dialect`` (see the module docstring). Errors before the first byte are
    raised (the caller's handler answers them in the dialect's shape)."""
    runs = request.app.state.runs
    started: Started = await start(runs, listings_of(request), gateway_request)
    items = answer(runs, started)
    first = await anext(items)  # the first text (first-token), or the whole answer; the run's error raises here
    if isinstance(first, Answer):
        headers = run_headers(started.run_id, first.winner, first.cost_usd)
    else:
        headers = run_headers(started.run_id, started.committed[0] if started.committed else None)
    if not gateway_request.stream:
        reply = first if isinstance(first, Answer) else await _rest(first, items)
        if not isinstance(first, Answer):
            headers = run_headers(started.run_id, reply.winner, reply.cost_usd)
        return JSONResponse(dialect.whole(gateway_request, reply), headers=headers)

    async def replayed() -> AsyncIterator[TextOut | Answer]:
        yield first
        async for item in items:
            yield item

    async def body() -> AsyncIterator[bytes]:
        answered = False
        try:
            async with contextlib.aclosing(items):
                async for chunk in dialect.stream(gateway_request, replayed()):
                    yield chunk
            answered = True  # the whole answer went out; the run may still be closing its losers
        finally:
            if not answered:
                # The client went away mid-stream: the run's legs stop costing now (cancelling a finished run is a
                # no-op that returns its snapshot).
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await runs.cancel(started.run_id)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})


async def _rest(first: TextOut, items: AsyncIterator[TextOut | Answer]) -> Answer:
    """The whole answer of a first-token run whose first text already came (the rest of its text, then it)."""
    parts = [first.text]
    async for item in items:
        if isinstance(item, TextOut):
            parts.append(item.text)
        else:
            item.text = "".join(parts) + item.text
            return item
    raise AssertionError("answer() ended without an Answer")  # pragma: no cover
