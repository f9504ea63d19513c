"""One gateway call, dialect-free: a :class:`GatewayRequest` becomes a run, and the run the client's answer.

Each dialect module validates its wire into a :class:`GatewayRequest` (the normalized message model of
servers/core/messages.py), and writes what :func:`answer` yields back in its own wire. In between, the call is an
ordinary ``ask`` run (:meth:`Runs.start_ask`): it is in the run log and on the dashboard with its legs, winner,
usage and cost, and the mixer's rules for its mode apply (cooldowns, hedge budget, fallback before the first byte).

What reaches the client is the winning leg only:

- ``first-token`` streams the committed leg's text as it comes (the first leg to stream a token, or to complete a
  tool call); its tool calls follow once it has finished;
- every other mode answers once its winner is known (``race``: the first complete answer, text or tool calls;
  ``synthesize``/``judge``: the final answer; ``all``: the first leg, in the spec's order, that answered).

Losers are cancelled by the mixer, which closes their upstream HTTP. Should the committed leg fail after text went
out, :func:`answer` raises: each dialect ends its stream with an error event in its own shape, never a silent
truncation.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...servers.core.errors import (
    ErrorKind,
    InvalidInputError,
    LLMMixerError,
    ServerError,
    UnavailableError,
    error_from_dict,
)
from ...servers.core.messages import ChatMessage, TextPart, ToolCall, ToolChoice, ToolSpec
from .models import Listings, VirtualModel, resolve

__all__ = ["GatewayRequest", "Answer", "TextOut", "answer", "start", "Started", "status_of", "headers_of",
           "split_prompt"]

MAX_RUN_S = 3600.0  # a call waits at most this long for its run


class GatewayRequest(BaseModel):
    """What every dialect's request becomes."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    system: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stream: bool = False


@dataclass
class Answer:
    """The winner's answer, once the run is over."""

    run_id: str
    winner: str
    model: str
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass(frozen=True)
class TextOut:
    text: str


@dataclass
class Started:
    run_id: str
    virtual: VirtualModel
    committed: list[str] = field(default_factory=list)  # the leg whose text went out (first-token)


def split_prompt(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The final user turn's text as the run's prompt when that turn is plain text; otherwise no prompt and the
    whole conversation as messages (the last turn then holds tool results)."""
    last = messages[-1]
    if last.role == "user" and (isinstance(last.content, str)
                                or all(isinstance(part, TextPart) for part in last.content)):
        text = last.content if isinstance(last.content, str) else "".join(
            part.text for part in last.content if isinstance(part, TextPart))
        if text.strip():
            return text, messages[:-1]
    if last.role != "user":
        raise InvalidInputError("messages: the last message must be the user's (a question or tool results)")
    return "", messages


async def start(runs: Any, listings: Listings, request: GatewayRequest) -> Started:
    """Resolve the model and start the run.

    Raises:
        LLMMixerError: ``not_found`` for an unknown model, ``invalid_input`` for a bad request, ``rate_limit`` when
        the servers' queues are full, ``unavailable`` when no run service is behind this app.
    """
    if getattr(runs, "config", None) is None:
        raise UnavailableError("this server has no model servers: start it with `llmmixer serve`")
    virtual = await resolve(runs, listings, request.model)
    prompt, messages = split_prompt(request.messages)
    run_id = await runs.start_ask(
        prompt, models=virtual.sources, mode=virtual.mode, system=request.system, max_tokens=request.max_tokens,
        temperature=request.temperature, model_for=virtual.model_for or None,
        messages=[message.model_dump(mode="json", exclude_none=True) for message in messages] or None,
        tools=[tool.model_dump(mode="json", exclude_none=True) for tool in request.tools] if request.tools else None,
        tool_choice=(request.tool_choice if isinstance(request.tool_choice, str) or request.tool_choice is None
                     else request.tool_choice.model_dump()))
    return Started(run_id=run_id, virtual=virtual)


async def answer(runs: Any, started: Started) -> AsyncGenerator[TextOut | Answer, None]:
    """The winner's text as it goes (first-token), then its whole :class:`Answer`; raises the run's error.

    Raises:
        LLMMixerError: every leg failed (the most telling leg error), or the committed leg failed after its text
        went out (``server``, naming the leg and its error).
    """
    run_id = started.run_id
    if started.virtual.mode == "first-token":
        async for source, text in runs.deltas(run_id):
            if not started.committed:
                started.committed.append(source)
            if source == started.committed[0] and text:
                yield TextOut(text)
    else:
        early = await runs.decided(run_id, MAX_RUN_S)
        if early is not None:  # the winner is known: answer now, while the losers are still being closed
            leg, cost_usd = early
            yield _answer(run_id, leg.wire(), cost_usd, streamed=False)
            return
    await runs.wait(run_id, MAX_RUN_S)
    result = await runs.snapshot(run_id)
    legs = result.get("legs") or []
    winner = _winner(result, legs)
    if started.committed and (winner is None or winner["source"] != started.committed[0]):
        failed: dict[str, Any] = next((leg for leg in legs if leg["source"] == started.committed[0]), {})
        error = (failed.get("error") or {}).get("message", "it stopped")
        raise ServerError(f"{started.committed[0]} failed after its answer had begun streaming: {error}")
    if winner is None:
        raise _run_error(result, legs)
    yield _answer(run_id, winner, result.get("total_cost_usd"),
                  streamed=bool(started.committed) and winner["source"] == started.committed[0])


def _answer(run_id: str, winner: dict[str, Any], cost_usd: float | None, *, streamed: bool) -> Answer:
    """The winning leg (as the run's result writes it) as the client's answer; ``streamed``: its text went out."""
    usage = winner.get("usage") or {}
    calls = [ToolCall.model_validate(call) for call in winner.get("tool_calls") or []]
    return Answer(run_id=run_id, winner=winner["source"], model=winner.get("model") or winner["source"],
                  text="" if streamed else winner.get("text") or "", tool_calls=calls,
                  stop_reason=winner.get("stop_reason") or ("tool_use" if calls else "end_turn"),
                  input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0),
                  cost_usd=cost_usd)


def _winner(result: dict[str, Any], legs: list[dict[str, Any]]) -> dict[str, Any] | None:
    name = result.get("winner")
    if name is None and result.get("mode") == "all":
        name = next((leg["source"] for leg in legs if leg.get("status") in ("done", "won")), None)
    return next((leg for leg in legs if leg["source"] == name), None) if name else None


def _run_error(result: dict[str, Any], legs: list[dict[str, Any]]) -> LLMMixerError:
    """The error a failed run answers with: its own, else the first leg's that is not a cancellation."""
    if isinstance(result.get("error"), dict):
        return error_from_dict(result["error"])
    errors = [leg["error"] for leg in legs if isinstance(leg.get("error"), dict)]
    telling = [error for error in errors if error.get("kind") != "cancelled"] or errors
    if not telling:
        return ServerError(f"the run ended without an answer ({result.get('status', 'no status')})")
    first = telling[0]
    error = error_from_dict(first)
    source = next(leg["source"] for leg in legs if leg.get("error") is first)
    where = ", ".join(str(part) for part in (first.get("vendor"), first.get("status") and f"HTTP {first['status']}")
                      if part)
    error.message = f"{source} ({where}): {error.message}" if where else f"{source}: {error.message}"
    if len(errors) > 1:
        others = "; ".join(f"{leg['source']}: {leg['error'].get('kind')}" for leg in legs if leg.get("error"))
        error.message = f"{error.message} (every model failed: {others})"
    return error


# -- statuses and headers, for every dialect ---------------------------------------------------------------------

_STATUS: dict[ErrorKind, int] = {
    ErrorKind.BAD_REQUEST: 400, ErrorKind.INVALID_INPUT: 400, ErrorKind.CONTEXT_LENGTH: 400,
    ErrorKind.CONTENT_FILTER: 400, ErrorKind.AUTH: 401, ErrorKind.PERMISSION: 403, ErrorKind.POLICY: 403,
    ErrorKind.NOT_FOUND: 404, ErrorKind.RATE_LIMIT: 429, ErrorKind.QUOTA: 429, ErrorKind.OVERLOADED: 529,
    ErrorKind.SERVER: 502, ErrorKind.CONNECTION: 502, ErrorKind.INVALID_OUTPUT: 502, ErrorKind.CANCELLED: 502,
    ErrorKind.UNAVAILABLE: 503, ErrorKind.TIMEOUT: 504,
}
# An upstream vendor refusing *our* key is not the client's fault: the client's own token was accepted.
_UPSTREAM_CONFIG = {ErrorKind.AUTH, ErrorKind.PERMISSION}


def status_of(error: LLMMixerError) -> int:
    """The HTTP status of ``error`` on the gateway (the dialects' own error types follow from it)."""
    if error.kind in _UPSTREAM_CONFIG and error.vendor is not None:
        return 502
    return _STATUS.get(error.kind, 500)


def headers_of(error: LLMMixerError) -> dict[str, str]:
    if error.retry_after_s is not None and error.kind in (ErrorKind.RATE_LIMIT, ErrorKind.QUOTA,
                                                          ErrorKind.OVERLOADED, ErrorKind.UNAVAILABLE):
        return {"retry-after": str(max(1, math.ceil(error.retry_after_s)))}
    if error.kind in (ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED):
        return {"retry-after": "1"}
    return {}
