"""The Anthropic Messages API as the official ``anthropic`` SDK sees it.

Routes (under ``/anthropic``):

    POST /v1/messages              ``stream: true`` -> SSE; otherwise one ``Message`` object
    GET  /v1/models[?limit=&after_id=&before_id=]   ``{"data", "has_more", "first_id", "last_id"}``, newest first
    GET  /v1/models/{model_id}     one ``ModelInfo``

Wire details copied from the live service:

- A stream is ``message_start`` (``usage.input_tokens``, ``output_tokens`` 1), then per content block
  ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, then ``message_delta``
  (``stop_reason``, cumulative ``usage.output_tokens``) and ``message_stop``. A ``ping`` follows the first
  ``content_block_start``. Every frame carries an ``event:`` name equal to its ``type``.
- Thinking comes first as a ``thinking`` block (``thinking_delta``s, then one ``signature_delta``); the answer is a
  ``text`` block with ``text_delta``s.
- Errors are ``{"type": "error", "error": {"type", "message"}, "request_id": "req_..."}`` with a ``request-id``
  header; 429 adds ``retry-after`` (seconds) and the ``anthropic-ratelimit-*`` headers; 529 is ``overloaded_error``.
  Mid-stream, the same error object (without ``request_id``) is sent as ``event: error`` and the stream ends.
- The service checks the key (``x-api-key`` or ``Authorization: Bearer``, which SDK 2.x sends) and
  ``anthropic-version`` before anything else. Under version ``2026-10-21`` (SDK 2.x's default) any sampling
  parameter is refused ("temperature: Extra inputs are not permitted"); older versions check its range.

Scripted turns (script.py): a request that declares ``tools`` is answered by the vendor's script, if one is set:
its text as a ``text`` block, its tool call as a ``tool_use`` block whose input streams as ``input_json_delta``
pieces, then ``stop_reason: "tool_use"``. Tool results come back as ``tool_result`` blocks of user messages.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": n}``.

Behaviour mapping (see behaviour.py): ``InjectedError.type`` picks the error: ``prompt_too_long`` (also
``context_length``, ``context_length_exceeded``, ``token_limit``) renders the live 400 "prompt is too long" body;
any Anthropic error type (``overloaded_error``, ``billing_error``...) is used as given; otherwise the status picks
it. Structured output (``output_config.format`` of type ``json_schema``) replies with ``reply_json`` or a small
object valid against the schema.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .app import EmulatorContext
from .behaviour import Behaviour, InjectedError, split_tokens
from .input_checks import anthropic_problem
from .recorder import RequestRecord
from .schema_example import example_for_schema
from .script import Turn, call_id, text_of
from .streaming import Hang, Reset, StreamingBody, pace, sse_event

__all__ = ["routes", "MODELS", "error_body"]

VENDOR = "anthropic"
CONTEXT_WINDOW = 200_000
# From this API version on, sampling parameters (temperature, top_p, top_k) are a 400 at any value.
SAMPLING_REMOVED_IN = "2026-10-21"

# Newest first, as the service lists them. Dated snapshots and the undated ids of newer models both occur.
MODELS: list[dict[str, Any]] = [
    {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-17T00:00:00Z",
     "max_input_tokens": 1000000, "max_tokens": 64000, "lifecycle": "active"},
    {"id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-05T00:00:00Z",
     "max_input_tokens": 1000000, "max_tokens": 128000, "lifecycle": "active"},
    {"id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5", "created_at": "2025-11-24T00:00:00Z",
     "max_input_tokens": 200000, "max_tokens": 64000, "lifecycle": "deprecated"},
    {"id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-15T00:00:00Z",
     "max_input_tokens": 200000, "max_tokens": 64000, "lifecycle": "active"},
    {"id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z",
     "max_input_tokens": 1000000, "max_tokens": 64000, "lifecycle": "deprecated"},
]

# The error type the service pairs with each status.
_STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                 403: "permission_error", 404: "not_found_error", 408: "timeout_error", 413: "request_too_large",
                 429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "api_error", 504: "timeout_error",
                 529: "overloaded_error"}
_TYPE_STATUSES = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                  "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                  "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
_DEFAULT_MESSAGES = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to "
                     "upgrade or purchase credits.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization of 50 requests per minute. "
                        "For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}
_CONTEXT_TYPES = {"prompt_too_long", "context_length", "context_length_exceeded", "token_limit"}
_SIGNATURE = "EqQBCkgIBhABGAIiQL7sZ0uR1pCqd3Vw5Ue4Y3v0qo3oH2xJ0w1L9Kf8P7nM6b5c4d3e2f1g0h9i8j7k6l5m4n3o2p1q0r9s8t7u6"


def _id(ctx: EmulatorContext, prefix: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "011C" + "".join(ctx.rng.choice(alphabet) for _ in range(20))


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def error_body(error: InjectedError, request_id: str = "req_011CTest") -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers the live API sends for ``error``."""
    headers: dict[str, str] = {"request-id": request_id, "x-should-retry": "false"}
    if error.body is not None:
        return error.status, error.body, {**headers, **error.headers}
    kind = (error.type or "").strip()
    status = error.status
    if kind in _CONTEXT_TYPES:
        status, error_type = 400, "invalid_request_error"
        message = error.message or f"prompt is too long: {CONTEXT_WINDOW + 4242} tokens > {CONTEXT_WINDOW} maximum"
    elif kind:
        error_type = kind
        if "status" not in error.model_fields_set:  # a type alone implies the status the service pairs with it
            status = _TYPE_STATUSES.get(kind, status)
        message = error.message or _DEFAULT_MESSAGES.get(kind, kind)
    else:
        error_type = _STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        message = error.message or _DEFAULT_MESSAGES[error_type]
    if status in (408, 429, 500, 502, 503, 504, 529):
        headers["x-should-retry"] = "true"
    if status == 429:
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + (error.retry_after_s or 60)))
        headers.update({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                        "anthropic-ratelimit-requests-reset": reset})
    if error.retry_after_s is not None:
        headers["retry-after"] = _retry_after_header(error.retry_after_s)
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    return status, body, {**headers, **error.headers}


def _error_response(ctx: EmulatorContext, error: InjectedError, record: RequestRecord) -> Response:
    status, body, headers = error_body(error, _id(ctx, "req_"))
    record.outcome = "error"
    record.ended_at = time.time()
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(ctx: EmulatorContext, message: str, record: RequestRecord, status: int = 400) -> Response:
    return _error_response(ctx, InjectedError(status=status, message=message), record)


# -- structured output ---------------------------------------------------------------------------------------------

def _reply_text(behaviour: Behaviour, body: dict[str, Any]) -> str:
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") != "json_schema" or behaviour.ignore_schema:
        return behaviour.reply
    value = behaviour.reply_json
    if value is None:
        value = example_for_schema(output_format.get("schema"), plausible=behaviour.plausible)
    return json.dumps(value, ensure_ascii=False)


# -- one reply ---------------------------------------------------------------------------------------------------------

class _Reply:
    """Everything one message will say, decided up front so the streaming and whole forms agree."""

    def __init__(self, ctx: EmulatorContext, behaviour: Behaviour, body: dict[str, Any]) -> None:
        self.behaviour = behaviour
        self.model = str(body["model"])
        self.message_id = _id(ctx, "msg_")
        self.thoughts = split_tokens(behaviour.thinking) if behaviour.thinking else []
        answer = split_tokens(_reply_text(behaviour, body), behaviour.tokens)
        budget = max(0, int(body["max_tokens"]) - len(self.thoughts))
        self.truncated = len(answer) > budget
        self.answer = answer[:budget]
        prompt = json.dumps([body.get("system"), body.get("messages")], ensure_ascii=False)
        self.input_tokens = behaviour.input_tokens or max(1, len(prompt) // 4)
        self.stop_reason = behaviour.stop_reason or ("max_tokens" if self.truncated else "end_turn")

    def output_details(self, thought: int) -> dict[str, Any]:
        """``output_tokens_details`` (the thinking share of ``output_tokens``) when the model thought."""
        return {"output_tokens_details": {"thinking_tokens": thought}} if self.thoughts else {}

    def message(self, content: list[dict[str, Any]], output_tokens: int, stop_reason: str | None) -> dict[str, Any]:
        return {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0,
                          "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                          "output_tokens": output_tokens, "service_tier": "standard",
                          **(self.output_details(len(self.thoughts)) if stop_reason else {})}}


def _event(payload: dict[str, Any]) -> bytes:
    # The service writes compact JSON, except in ``ping`` and ``error`` frames.
    return sse_event(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), event=payload["type"])


async def _sse(ctx: EmulatorContext, reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    yield _event({"type": "message_start", "message": reply.message([], 1, None)})
    blocks = (["thinking"] if reply.thoughts else []) + ["text"]

    def start(index: int) -> bytes:
        block = ({"type": "thinking", "thinking": "", "signature": ""} if blocks[index] == "thinking"
                 else {"type": "text", "text": ""})
        return _event({"type": "content_block_start", "index": index, "content_block": block})

    yield start(0)
    yield sse_event(json.dumps({"type": "ping"}), event="ping")
    index = sent = 0
    async for token in pace([*reply.thoughts, *reply.answer], behaviour, ctx.rng, record):
        if blocks[index] == "thinking" and sent == len(reply.thoughts):
            yield _event({"type": "content_block_delta", "index": index,
                          "delta": {"type": "signature_delta", "signature": _SIGNATURE}})
            yield _event({"type": "content_block_stop", "index": index})
            index += 1
            yield start(index)
        delta = ({"type": "thinking_delta", "thinking": token} if blocks[index] == "thinking"
                 else {"type": "text_delta", "text": token})
        yield _event({"type": "content_block_delta", "index": index, "delta": delta})
        sent += 1
    if behaviour.error is not None:  # error_after_tokens: the service's mid-stream error event, then the end
        _, body, _ = error_body(behaviour.error)
        body.pop("request_id", None)
        record.outcome = "error"
        yield sse_event(json.dumps(body, ensure_ascii=False), event="error")
        return
    if blocks[index] == "thinking":  # a reply with thoughts but no answer tokens still closes both blocks
        yield _event({"type": "content_block_delta", "index": index,
                      "delta": {"type": "signature_delta", "signature": _SIGNATURE}})
        yield _event({"type": "content_block_stop", "index": index})
        index += 1
        yield start(index)
    yield _event({"type": "content_block_stop", "index": index})
    usage = {"input_tokens": reply.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": sent, **reply.output_details(min(sent, len(reply.thoughts)))}
    yield _event({"type": "message_delta", "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                  "usage": usage})
    yield _event({"type": "message_stop"})


async def _whole(ctx: EmulatorContext, reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    """A non-streaming ``Message``: the same reply gathered into one JSON object."""
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    tokens = [token async for token in pace([*reply.thoughts, *reply.answer], behaviour, ctx.rng, record)]
    thoughts, answer = tokens[: len(reply.thoughts)], tokens[len(reply.thoughts):]
    content: list[dict[str, Any]] = []
    if thoughts:
        content.append({"type": "thinking", "thinking": "".join(thoughts), "signature": _SIGNATURE})
    content.append({"type": "text", "text": "".join(answer)})
    message = reply.message(content, len(tokens), reply.stop_reason)
    yield json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


# -- scripted tool calls ------------------------------------------------------------------------------------------------

def _tool_results(body: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """``(tool_use_id, tool name, output)`` for every ``tool_result`` block of the conversation."""
    names: dict[str, str] = {}
    out: list[tuple[str, str | None, str]] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
            elif block.get("type") == "tool_result":
                use_id = str(block.get("tool_use_id"))
                out.append((use_id, names.get(use_id), text_of(block.get("content", ""))))
    return out


async def _tool_sse(ctx: EmulatorContext, reply: _Reply, turn: Turn, record: RequestRecord) -> AsyncIterator[bytes]:
    """A scripted turn: optional text, then one ``tool_use`` block, ending with ``stop_reason: tool_use``."""
    yield _event({"type": "message_start", "message": reply.message([], 1, None)})
    index = sent = 0
    if reply.answer:
        yield _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        yield sse_event(json.dumps({"type": "ping"}), event="ping")
        async for token in pace(reply.answer, reply.behaviour, ctx.rng, record):
            yield _event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}})
            sent += 1
        yield _event({"type": "content_block_stop", "index": 0})
        index = 1
    block: dict[str, Any] = {"type": "tool_use", "id": call_id("toolu_01"), "name": turn.tool, "input": {}}
    yield _event({"type": "content_block_start", "index": index, "content_block": block})
    arguments = json.dumps(turn.args, ensure_ascii=False)
    for piece in split_tokens(arguments, max(1, len(arguments) // 16)):
        yield _event({"type": "content_block_delta", "index": index,
                      "delta": {"type": "input_json_delta", "partial_json": piece}})
        sent += 1
    record.tokens_sent = sent
    yield _event({"type": "content_block_stop", "index": index})
    usage = {"input_tokens": reply.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": sent}
    yield _event({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                  "usage": usage})
    yield _event({"type": "message_stop"})


async def _tool_whole(ctx: EmulatorContext, reply: _Reply, turn: Turn, record: RequestRecord
                      ) -> AsyncIterator[bytes]:
    tokens = [token async for token in pace(reply.answer, reply.behaviour, ctx.rng, record)]
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(tokens)}] if tokens else []
    content.append({"type": "tool_use", "id": call_id("toolu_01"), "name": turn.tool, "input": turn.args})
    yield json.dumps(reply.message(content, len(tokens) + 1, "tool_use"), ensure_ascii=False).encode()


# -- routes ------------------------------------------------------------------------------------------------------------

def _check_headers(request: Request) -> InjectedError | None:
    if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
        return InjectedError(status=401, message="x-api-key header is required")
    if request.url.path.endswith("/messages") and not request.headers.get("anthropic-version"):
        return InjectedError(status=400, message="anthropic-version: header is required")
    return None


def _check_body(body: Any, api_version: str) -> str | None:
    """The live service's validation message for a malformed request, or None."""
    if not isinstance(body, dict):
        return "There was an issue with your request: the body is not a JSON object"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages: at least one message is required"
    sampling = [name for name in ("temperature", "top_p", "top_k") if name in body]
    if sampling and api_version >= SAMPLING_REMOVED_IN:
        return f"{sampling[0]}: Extra inputs are not permitted"
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        return "temperature: range: 0..1"
    return None


def routes(ctx: EmulatorContext) -> list[BaseRoute]:
    async def messages(request: Request) -> Response | StreamingBody:
        try:
            body: Any = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        record = ctx.open_record(VENDOR, request, body)
        behaviour = ctx.behaviour_for(VENDOR)
        refused = _check_headers(request)
        if refused is not None:
            return _error_response(ctx, refused, record)
        problem = _check_body(body, request.headers["anthropic-version"]) or anthropic_problem(body)
        if problem is not None:
            return _invalid(ctx, problem, record)
        streaming = body.get("stream") is True
        # A non-streaming call cannot fail halfway: its error (even one scripted mid-stream) is the whole answer.
        if behaviour.error is not None and (behaviour.error_after_tokens is None or not streaming):
            await anyio.sleep(behaviour.first_token_delay_s(ctx.rng))
            return _error_response(ctx, behaviour.error, record)
        turn = ctx.scripted_turn(VENDOR, record, _tool_results(body), bool(body.get("tools")))
        if turn is not None:
            behaviour = behaviour.model_copy(update={"reply": turn.say or "", "thinking": None})
        reply = _Reply(ctx, behaviour, body)
        headers = {"request-id": _id(ctx, "req_")}
        if turn is not None and turn.tool is not None:
            tool_turn = turn
            if streaming:
                return StreamingBody(lambda: _tool_sse(ctx, reply, tool_turn, record), record, headers=headers,
                                     split_utf8=behaviour.split_utf8)
            return StreamingBody(lambda: _tool_whole(ctx, reply, tool_turn, record), record,
                                 headers={**headers, "content-type": "application/json"})
        if streaming:
            return StreamingBody(lambda: _sse(ctx, reply, record), record, headers=headers,
                                 split_utf8=behaviour.split_utf8)
        return StreamingBody(lambda: _whole(ctx, reply, record), record,
                             headers={**headers, "content-type": "application/json"}, split_utf8=behaviour.split_utf8)

    def model_info(model: dict[str, Any]) -> dict[str, Any]:
        deprecated = model["lifecycle"] == "deprecated"
        return {"type": "model", **model, "deprecated_at": "2026-08-01T00:00:00Z" if deprecated else None,
                "retires_at": None}

    async def list_models(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        behaviour = ctx.behaviour_for(VENDOR)
        refused = _check_headers(request) or behaviour.error
        if refused is not None:
            return _error_response(ctx, refused, record)
        try:
            limit = int(request.query_params.get("limit") or 20)
        except ValueError:
            return _invalid(ctx, "limit: Input should be a valid integer", record)
        if not 1 <= limit <= 1000:
            return _invalid(ctx, "limit: Input should be between 1 and 1000", record)
        ids = [m["id"] for m in MODELS]
        after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
        if before:
            end = ids.index(before) if before in ids else 0
            page = MODELS[max(0, end - limit):end]
            has_more = end - limit > 0
        else:
            start = ids.index(after) + 1 if after in ids else 0
            page = MODELS[start:start + limit]
            has_more = start + limit < len(MODELS)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse({"data": [model_info(m) for m in page], "has_more": has_more,
                             "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})

    async def get_model(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        refused = _check_headers(request)
        if refused is not None:
            return _error_response(ctx, refused, record)
        wanted = request.path_params["model_id"]
        found = next((m for m in MODELS if m["id"] == wanted or m["id"].rsplit("-", 1)[0] == wanted), None)
        if found is None:
            return _error_response(ctx, InjectedError(status=404, message=f"model: {wanted}"), record)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse(model_info(found))

    async def count_tokens(request: Request) -> Response:
        try:
            body: Any = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        record = ctx.open_record(VENDOR, request, body)
        refused = _check_headers(request)
        if refused is not None:
            return _error_response(ctx, refused, record)
        if not isinstance(body, dict) or "messages" not in body:
            return _invalid(ctx, "messages: Field required", record)
        prompt = json.dumps([body.get("system"), body.get("messages"), body.get("tools")], ensure_ascii=False)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse({"input_tokens": max(1, len(prompt) // 4)})

    return [
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    ]
