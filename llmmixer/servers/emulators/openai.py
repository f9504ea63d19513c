"""The OpenAI API as the official ``openai`` SDK sees it: Responses, Chat Completions and Models.

Routes (under ``/openai``; the SDK's base URL is ``/openai/v1``):

    POST /v1/responses            ``stream: true``: SSE with named events; else one Response object
    POST /v1/chat/completions     ``stream: true``: ``data: {chat.completion.chunk}`` lines, ``data: [DONE]``
    GET  /v1/models               {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}
    GET  /v1/models/{model}       one model

Wire details copied from the live service:

- Responses: ``event: <type>`` + ``data: {"type": <type>, "sequence_number": n, ...}``. The order is
  ``response.created``, ``response.in_progress``, per output item ``response.output_item.added`` ->
  (``response.content_part.added`` -> ``response.output_text.delta``\\* -> ``response.output_text.done`` ->
  ``response.content_part.done``) -> ``response.output_item.done``, then ``response.completed`` (or
  ``response.incomplete`` when ``max_output_tokens`` cut the reply) whose ``response.usage`` holds the counts.
  Reasoning comes first as a ``reasoning`` item with ``response.reasoning_summary_text.delta`` events.
  No keepalives and no ``[DONE]``.
- A mid-stream failure is ``event: error`` whose data nests the error object
  (``{"type": "error", "sequence_number": n, "error": {"type", "code", "message", "param"}}``, which is what
  the live service sends even though the API reference draws the fields flat), or ``response.failed`` with
  ``response.error`` for a server error. The stream then ends.
- Chat Completions: the first chunk carries ``delta.role``; every chunk has ``"usage": null`` when the request asked
  for ``stream_options.include_usage``, and then one last chunk with ``"choices": []`` carries the usage; a
  mid-stream failure is one ``data: {"error": {...}}`` line, then the stream ends. Reasoning text (``thinking``)
  goes out as ``delta.reasoning_content``, as the OpenAI-compatible local servers (vLLM, llama.cpp) send it.
- Errors are ``{"error": {"message", "type", "param", "code"}}`` with ``x-request-id``; a 429 carries the
  ``x-ratelimit-*`` headers, plus ``retry-after`` / ``retry-after-ms`` when the behaviour sets ``retry_after_s``.
  A 401 for a wrong key quotes the key masked, like the live service.

Scripted turns (script.py): a request that declares ``tools`` is answered by the vendor's script, if one is set. On
Responses, the text is a ``message`` item and the tool call a ``function_call`` item (``call_id``, ``name``,
``arguments`` streamed as ``response.function_call_arguments.delta``); results come back as
``function_call_output`` input items. On Chat, the call is ``delta.tool_calls`` pieces and ``finish_reason:
"tool_calls"``; results come back as ``role: "tool"`` messages.

Behaviour mapping (see behaviour.py): ``InjectedError.type`` picks the error body: ``invalid_api_key``,
``insufficient_quota``, ``rate_limit_exceeded``, ``context_length_exceeded`` (also ``prompt_too_long``,
``token_limit``), ``invalid_prompt`` (a usage-policy block), ``model_not_found``, ``server_error``; otherwise
the status does. A mid-stream 500 is sent as ``response.failed`` (Responses), any other as an ``error`` event.
A scripted ``body`` goes out verbatim: as the ``error`` event's data fields (Responses) or the ``data:`` line (Chat).
``stop_reason``: ``length`` (also ``max_tokens``, ``max_output_tokens``) truncates, ``content_filter`` stops the
reply on the filter, ``refusal`` sends the reply as a refusal; anything else completes normally.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .app import EmulatorContext
from .behaviour import Behaviour, InjectedError, split_tokens
from .input_checks import openai_problem
from .recorder import RequestRecord
from .schema_example import example_for_schema
from .script import Turn, call_id, text_of
from .streaming import Hang, Reset, StreamingBody, pace, sse_event

__all__ = ["routes", "MODELS", "SNAPSHOTS", "error_body"]

VENDOR = "openai"
CREATED = 1_754_425_777  # a fixed clock keeps the wire deterministic across runs

MODELS: list[dict[str, Any]] = [
    {"id": "gpt-5", "object": "model", "created": 1754425777, "owned_by": "system"},
    {"id": "gpt-5-2025-08-07", "object": "model", "created": 1754425777, "owned_by": "system"},
    {"id": "gpt-5-mini", "object": "model", "created": 1754425928, "owned_by": "system"},
    {"id": "gpt-5-mini-2025-08-07", "object": "model", "created": 1754425867, "owned_by": "system"},
    {"id": "gpt-5-nano", "object": "model", "created": 1754426384, "owned_by": "system"},
    {"id": "gpt-4.1", "object": "model", "created": 1744316542, "owned_by": "system"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "o4-mini", "object": "model", "created": 1744225351, "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"},
    {"id": "whisper-1", "object": "model", "created": 1677532384, "owned_by": "openai-internal"},
    {"id": "tts-1", "object": "model", "created": 1681940951, "owned_by": "openai-internal"},
    {"id": "dall-e-3", "object": "model", "created": 1698785189, "owned_by": "system"},
    {"id": "omni-moderation-latest", "object": "model", "created": 1731689265, "owned_by": "system"},
]
# The live API answers an alias with the dated snapshot that served it.
SNAPSHOTS = {"gpt-5": "gpt-5-2025-08-07", "gpt-5-mini": "gpt-5-mini-2025-08-07", "gpt-5-nano": "gpt-5-nano-2025-08-07",
             "gpt-4.1": "gpt-4.1-2025-04-14", "gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
             "o4-mini": "o4-mini-2025-04-16"}

_CONTEXT_TYPES = {"context_length", "context_length_exceeded", "prompt_too_long", "token_limit"}
_TRUNCATING_STOPS = {"length", "max_tokens", "max_output_tokens"}
_DEFAULT_MESSAGES = {
    400: ("invalid_request_error", None, "Invalid request."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", None, "Invalid URL (POST /v1/unknown)"),
    409: ("invalid_request_error", None, "The request conflicted with another request."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("cf_bad_gateway", "502", "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}
_NO_KEY_MESSAGE = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
                   "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) "
                   "if you're accessing the API from your browser and are prompted for a username and password. You "
                   "can obtain an API key from https://platform.openai.com/account/api-keys.")


# -- errors -----------------------------------------------------------------------------------------------------------

def _masked(key: str) -> str:
    """How the live 401 quotes a wrong key: a short head, stars, the last four characters."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def _duration(seconds: float) -> str:
    """The ``x-ratelimit-reset-*`` format: ``250ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"


def error_body(error: InjectedError, *, model: str = "gpt-5", key: str = "", api: str = "responses"
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, ``{"error": {...}}`` body and headers the live API sends for ``error``."""
    kind = (error.type or "").strip()
    status = error.status
    headers: dict[str, str] = {}
    param: str | None = None
    code: str | None
    if kind == "invalid_api_key" or (status == 401 and not kind):
        status, etype, code = 401, "invalid_request_error", "invalid_api_key"
        message = (f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
    elif kind == "insufficient_quota":
        status, etype, code = 429, "insufficient_quota", "insufficient_quota"
        message = ("You exceeded your current quota, please check your plan and billing details. For more "
                   "information on this error, read the docs: "
                   "https://platform.openai.com/docs/guides/error-codes/api-errors.")
    elif kind == "rate_limit_exceeded" or (status == 429 and not kind):
        status, etype, code = 429, "tokens", "rate_limit_exceeded"
        wait = error.retry_after_s if error.retry_after_s is not None else 1.0
        message = (f"Rate limit reached for {model} in organization org-emulator on tokens per min (TPM): "
                   f"Limit 30000, Used 29800, Requested 900. Please try again in {_duration(wait)}. Visit "
                   "https://platform.openai.com/account/rate-limits to learn more.")
        headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "30000",
                   "x-ratelimit-remaining-requests": "499", "x-ratelimit-remaining-tokens": "0",
                   "x-ratelimit-reset-requests": "120ms", "x-ratelimit-reset-tokens": _duration(wait)}
        if error.retry_after_s is not None:
            headers["retry-after"] = str(math.ceil(error.retry_after_s))
            headers["retry-after-ms"] = str(round(error.retry_after_s * 1000))
    elif kind in _CONTEXT_TYPES:
        status, etype, code = 400, "invalid_request_error", "context_length_exceeded"
        if api == "chat":
            param = "messages"
            message = ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
                       "131072 tokens. Please reduce the length of the messages.")
        else:
            param = "input"
            message = "Your input exceeds the context window of this model. Please adjust your input and try again."
    elif kind == "invalid_prompt":
        status, etype, code = 400, "invalid_request_error", "invalid_prompt"
        message = ("Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try "
                   "again with a different prompt.")
    elif kind == "model_not_found" or (status == 404 and not kind):
        status, etype, code = 404, "invalid_request_error", "model_not_found"
        message = f"The model `{model}` does not exist or you do not have access to it."
    elif kind == "server_error":
        status, (etype, code, message) = 500, _DEFAULT_MESSAGES[500]
    else:
        etype, code, message = _DEFAULT_MESSAGES.get(status, ("server_error" if status >= 500 else
                                                              "invalid_request_error", None, "Unknown error."))
    if error.body is not None:  # scripted verbatim: only the scripted headers go with it
        return error.status, error.body, dict(error.headers)
    inner = {"message": error.message or message, "type": etype, "param": param, "code": code}
    return status, {"error": inner}, {**headers, **error.headers}


def _request_headers(ctx: EmulatorContext) -> dict[str, str]:
    return {"x-request-id": "req_" + "".join(ctx.rng.choice("0123456789abcdef") for _ in range(32)),
            "openai-version": "2020-10-01", "openai-organization": "user-emulator", "openai-processing-ms": "42"}


def _error_response(ctx: EmulatorContext, error: InjectedError, record: RequestRecord, **context: Any) -> Response:
    status, body, headers = error_body(error, **context)
    record.outcome = "error"
    record.ended_at = time.time()
    return JSONResponse(body, status_code=status, headers={**_request_headers(ctx), **headers})


def _bearer_key(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


# -- structured output ------------------------------------------------------------------------------------------------

def _requested_schema(body: dict[str, Any], api: str) -> tuple[bool, Any]:
    """(asked for JSON, the schema if any) from ``text.format`` (Responses) or ``response_format`` (Chat)."""
    if api == "chat":
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return True, (fmt.get("json_schema") or {}).get("schema")
    else:
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            return True, fmt.get("schema")
    return fmt.get("type") == "json_object", None


# -- one reply, decided up front ---------------------------------------------------------------------------------------

class _Reply:
    """Everything one request will say, so the streaming and the whole-object answers agree."""

    def __init__(self, ctx: EmulatorContext, behaviour: Behaviour, body: dict[str, Any], api: str) -> None:
        self.ctx = ctx
        self.behaviour = behaviour
        self.api = api
        requested = str(body.get("model") or "gpt-5")
        self.model = SNAPSHOTS.get(requested, requested)
        self.created = CREATED
        wants_json, schema = _requested_schema(body, api)
        if wants_json and not behaviour.ignore_schema:
            value = behaviour.reply_json if behaviour.reply_json is not None else example_for_schema(schema or {}, plausible=behaviour.plausible)
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = behaviour.reply
        answer = split_tokens(text, behaviour.tokens)
        self.thoughts = split_tokens(behaviour.thinking) if behaviour.thinking else []
        limit = body.get("max_output_tokens") if api == "responses" else (
            body.get("max_completion_tokens") or body.get("max_tokens"))
        stop = behaviour.stop_reason or ""
        cut = isinstance(limit, int) and 0 < limit < len(answer)
        self.truncated = cut or stop in _TRUNCATING_STOPS
        self.answer = answer[:limit] if cut else answer
        self.filtered = stop == "content_filter"
        self.refusal = stop == "refusal"
        prompt = body.get("input", "") if api == "responses" else body.get("messages", "")
        size = len(json.dumps(prompt, ensure_ascii=False)) + len(str(body.get("instructions") or ""))
        self.input_tokens = behaviour.input_tokens or max(1, size // 4)
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.echo = {k: body.get(k) for k in ("instructions", "max_output_tokens", "temperature", "text")}

    def ident(self, prefix: str, length: int = 48) -> str:
        return prefix + "".join(self.ctx.rng.choice("0123456789abcdef") for _ in range(length))

    def obfuscation(self) -> str:
        return "".join(self.ctx.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                       for _ in range(self.ctx.rng.randint(2, 12)))


async def _paced(reply: _Reply, record: RequestRecord) -> AsyncIterator[tuple[bool, str]]:
    """``(is_thought, text)`` on the behaviour's schedule; reasoning first, like the service."""
    index = 0
    async for token in pace([*reply.thoughts, *reply.answer], reply.behaviour, reply.ctx.rng, record):
        yield index < len(reply.thoughts), token
        index += 1


# -- Responses ------------------------------------------------------------------------------------------------------

class _ResponsesStream:
    """Builds the Responses API objects and numbered events for one reply."""

    def __init__(self, reply: _Reply) -> None:
        self.reply = reply
        self.id = reply.ident("resp_")
        self.reasoning_id = reply.ident("rs_")
        self.message_id = reply.ident("msg_")
        self.sequence = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse_event(json.dumps(data, ensure_ascii=False), event=kind)

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None, incomplete: str | None = None) -> dict[str, Any]:
        echo = self.reply.echo
        return {
            "id": self.id, "object": "response", "created_at": self.reply.created, "status": status,
            "background": False, "completed_at": self.reply.created + 2 if status == "completed" else None,
            "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"],
            "max_tool_calls": None, "model": self.reply.model, "output": output, "parallel_tool_calls": True,
            "previous_response_id": None, "prompt_cache_key": None,
            "reasoning": {"effort": "medium", "summary": "auto" if self.reply.thoughts else None},
            "safety_identifier": None, "service_tier": "default", "store": True,
            "temperature": echo["temperature"] if echo["temperature"] is not None else 1.0,
            "text": echo["text"] or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
            "usage": usage, "user": None, "metadata": {},
        }

    def usage(self, answered: int, thought: int) -> dict[str, Any]:
        inputs, outputs = self.reply.input_tokens, answered + thought
        return {"input_tokens": inputs, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": outputs, "output_tokens_details": {"reasoning_tokens": thought},
                "total_tokens": inputs + outputs}

    def reasoning_item(self, summary: str | None) -> dict[str, Any]:
        parts = [] if summary is None else [{"type": "summary_text", "text": summary}]
        return {"id": self.reasoning_id, "type": "reasoning", "summary": parts}

    def part(self, text: str) -> dict[str, Any]:
        if self.reply.refusal:
            return {"type": "refusal", "refusal": text}
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def message_item(self, status: str, text: str | None) -> dict[str, Any]:
        return {"id": self.message_id, "type": "message", "status": status,
                "content": [] if text is None else [self.part(text)], "role": "assistant"}

    def final_status(self) -> tuple[str, str | None]:
        if self.reply.filtered:
            return "incomplete", "content_filter"
        if self.reply.truncated:
            return "incomplete", "max_output_tokens"
        return "completed", None


async def _responses_sse(reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    out = _ResponsesStream(reply)
    yield out.event("response.created", response=out.response("in_progress", []))
    yield out.event("response.in_progress", response=out.response("in_progress", []))
    output: list[dict[str, Any]] = []
    thoughts: list[str] = []
    answer: list[str] = []
    message_index = 1 if reply.thoughts else 0
    text_kind = "refusal" if reply.refusal else "output_text"
    reasoning_ids = {"item_id": out.reasoning_id, "output_index": 0, "summary_index": 0}
    text_ids = {"item_id": out.message_id, "output_index": message_index, "content_index": 0}

    def close_reasoning() -> list[bytes]:
        summary = "".join(thoughts)
        output.append(out.reasoning_item(summary))
        return [out.event("response.reasoning_summary_text.done", **reasoning_ids, text=summary),
                out.event("response.reasoning_summary_part.done", **reasoning_ids,
                          part={"type": "summary_text", "text": summary}),
                out.event("response.output_item.done", output_index=0, item=out.reasoning_item(summary))]

    def open_message() -> list[bytes]:
        return [out.event("response.output_item.added", output_index=message_index,
                          item=out.message_item("in_progress", None)),
                out.event("response.content_part.added", **text_ids, part=out.part(""))]

    if reply.thoughts:
        yield out.event("response.output_item.added", output_index=0, item=out.reasoning_item(None))
        yield out.event("response.reasoning_summary_part.added", **reasoning_ids,
                        part={"type": "summary_text", "text": ""})
    else:
        for frame in open_message():
            yield frame
    async for is_thought, text in _paced(reply, record):
        if is_thought:
            thoughts.append(text)
            yield out.event("response.reasoning_summary_text.delta", **reasoning_ids, delta=text,
                            obfuscation=reply.obfuscation())
            continue
        if reply.thoughts and not answer:
            for frame in [*close_reasoning(), *open_message()]:
                yield frame
        answer.append(text)
        extra: dict[str, Any] = {} if reply.refusal else {"logprobs": []}
        yield out.event(f"response.{text_kind}.delta", **text_ids, delta=text, **extra,
                        obfuscation=reply.obfuscation())
    if behaviour.error is not None:  # error_after_tokens
        status, body, _ = error_body(behaviour.error, model=reply.model)
        record.outcome = "error"
        if behaviour.error.body is not None:  # a scripted event: its data fields verbatim (e.g. the flat shape)
            yield out.event("error", **body)
            return
        inner = body["error"]
        if status == 500 and inner.get("type") == "server_error":
            yield out.event("response.failed", response=out.response(
                "failed", output, error={"code": "server_error", "message": inner.get("message", "")},
                usage=out.usage(len(answer), len(thoughts))))
        else:
            yield out.event("error", error=inner)
        return
    if reply.thoughts and not answer:  # reasoning only
        for frame in [*close_reasoning(), *open_message()]:
            yield frame
    text = "".join(answer)
    final_status, incomplete = out.final_status()
    done_field = {"refusal": text} if reply.refusal else {"text": text, "logprobs": []}
    yield out.event(f"response.{text_kind}.done", **text_ids, **done_field)
    yield out.event("response.content_part.done", **text_ids, part=out.part(text))
    item = out.message_item("completed" if final_status == "completed" else "incomplete", text)
    output.append(item)
    yield out.event("response.output_item.done", output_index=message_index, item=item)
    final = "response.completed" if final_status == "completed" else "response.incomplete"
    yield out.event(final, response=out.response(final_status, output, usage=out.usage(len(answer), len(thoughts)),
                                                 incomplete=incomplete))


async def _responses_whole(reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    if reply.behaviour.hang:
        raise Hang
    if reply.behaviour.reset:
        raise Reset
    out = _ResponsesStream(reply)
    thoughts: list[str] = []
    answer: list[str] = []
    async for is_thought, text in _paced(reply, record):
        (thoughts if is_thought else answer).append(text)
    status, incomplete = out.final_status()
    output = ([out.reasoning_item("".join(thoughts))] if thoughts else []) + [
        out.message_item("completed" if status == "completed" else "incomplete", "".join(answer))]
    whole = out.response(status, output, usage=out.usage(len(answer), len(thoughts)), incomplete=incomplete)
    yield json.dumps(whole, ensure_ascii=False, indent=2).encode()


# -- Chat Completions -------------------------------------------------------------------------------------------------

class _ChatStream:
    def __init__(self, reply: _Reply) -> None:
        self.reply = reply
        self.id = "chatcmpl-" + "".join(reply.ctx.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123"
                                                             "456789") for _ in range(29))
        self.fingerprint = "fp_" + reply.ident("", 10)

    def finish_reason(self) -> str:
        if self.reply.filtered:
            return "content_filter"
        return "length" if self.reply.truncated else "stop"

    def usage(self, answered: int, thought: int) -> dict[str, Any]:
        inputs, outputs = self.reply.input_tokens, answered + thought
        return {"prompt_tokens": inputs, "completion_tokens": outputs, "total_tokens": inputs + outputs,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": thought, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.reply.created,
                                "model": self.reply.model, "service_tier": "default",
                                "system_fingerprint": self.fingerprint, "choices": choices}
        if self.reply.include_usage:
            data["usage"] = usage
        if choices:
            data["obfuscation"] = self.reply.obfuscation()
        return sse_event(json.dumps(data, ensure_ascii=False))

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self.chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


async def _chat_sse(reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    out = _ChatStream(reply)
    field = "refusal" if reply.refusal else "content"
    yield out.delta({"role": "assistant", "content": None if reply.refusal else "", "refusal": None})
    answered = thought = 0
    async for is_thought, text in _paced(reply, record):
        if is_thought:
            thought += 1
            yield out.delta({"reasoning_content": text})
        else:
            answered += 1
            yield out.delta({field: text})
    if behaviour.error is not None:  # error_after_tokens: one error line, then the stream ends
        _, body, _ = error_body(behaviour.error, model=reply.model, api="chat")
        record.outcome = "error"
        yield sse_event(json.dumps(body, ensure_ascii=False))
        return
    yield out.delta({}, finish=out.finish_reason())
    if reply.include_usage:
        yield out.chunk([], usage=out.usage(answered, thought))
    yield sse_event("[DONE]")


async def _chat_whole(reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    if reply.behaviour.hang:
        raise Hang
    if reply.behaviour.reset:
        raise Reset
    out = _ChatStream(reply)
    thoughts: list[str] = []
    answer: list[str] = []
    async for is_thought, text in _paced(reply, record):
        (thoughts if is_thought else answer).append(text)
    text = "".join(answer)
    message: dict[str, Any] = {"role": "assistant", "content": None if reply.refusal else text,
                               "refusal": text if reply.refusal else None, "annotations": []}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    whole = {"id": out.id, "object": "chat.completion", "created": reply.created, "model": reply.model,
             "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": out.finish_reason()}],
             "usage": out.usage(len(answer), len(thoughts)), "service_tier": "default",
             "system_fingerprint": out.fingerprint}
    yield json.dumps(whole, ensure_ascii=False, indent=2).encode()


# -- scripted tool calls ----------------------------------------------------------------------------------------------

def _tool_results(body: dict[str, Any], api: str) -> list[tuple[str, str | None, str]]:
    """``(call_id, tool name, output)`` for every tool result of the conversation."""
    names: dict[str, str] = {}
    out: list[tuple[str, str | None, str]] = []
    if api == "chat":
        for message in body.get("messages") or []:
            if not isinstance(message, dict):
                continue
            for call in message.get("tool_calls") or []:
                names[str(call.get("id"))] = str((call.get("function") or {}).get("name"))
            if message.get("role") == "tool":
                cid = str(message.get("tool_call_id"))
                out.append((cid, names.get(cid), text_of(message.get("content", ""))))
        return out
    items = body.get("input")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            names[str(item.get("call_id"))] = str(item.get("name"))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            cid = str(item.get("call_id"))
            out.append((cid, names.get(cid), text_of(item.get("output", ""))))
    return out


def _argument_pieces(turn: Turn) -> tuple[str, list[str]]:
    arguments = json.dumps(turn.args, ensure_ascii=False)
    return arguments, split_tokens(arguments, max(1, len(arguments) // 16))


def _call_name(body: Any, name: str) -> dict[str, str]:
    """The name fields of a Responses call to ``name``. A tool declared inside a ``namespace`` tool (Codex groups
    each MCP server's tools as ``mcp__SERVER``) is called by its own name plus ``namespace``; a script names it
    ``NAMESPACE__TOOL``, the way the agent reports it."""
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools if isinstance(tools, list) else []:
        if not (isinstance(tool, dict) and tool.get("type") == "namespace"):
            continue
        prefix = f"{tool.get('name')}__"
        inner = name[len(prefix):]
        if name.startswith(prefix) and any(isinstance(t, dict) and t.get("name") == inner
                                           for t in tool.get("tools") or []):
            return {"name": inner, "namespace": str(tool["name"])}
    return {"name": name}


async def _responses_tool_sse(reply: _Reply, turn: Turn, record: RequestRecord) -> AsyncIterator[bytes]:
    out = _ResponsesStream(reply)
    yield out.event("response.created", response=out.response("in_progress", []))
    yield out.event("response.in_progress", response=out.response("in_progress", []))
    output: list[dict[str, Any]] = []
    answered = 0
    if reply.answer:
        ids = {"item_id": out.message_id, "output_index": 0, "content_index": 0}
        yield out.event("response.output_item.added", output_index=0, item=out.message_item("in_progress", None))
        yield out.event("response.content_part.added", **ids, part=out.part(""))
        parts = []
        async for _thought, text in _paced(reply, record):
            parts.append(text)
            yield out.event("response.output_text.delta", **ids, delta=text, logprobs=[],
                            obfuscation=reply.obfuscation())
        text = "".join(parts)
        answered = len(parts)
        yield out.event("response.output_text.done", **ids, text=text, logprobs=[])
        yield out.event("response.content_part.done", **ids, part=out.part(text))
        item = out.message_item("completed", text)
        output.append(item)
        yield out.event("response.output_item.done", output_index=0, item=item)
    index = len(output)
    arguments, pieces = _argument_pieces(turn)
    call = {"id": reply.ident("fc_"), "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": call_id("call_"), **_call_name(record.body, str(turn.tool))}
    yield out.event("response.output_item.added", output_index=index, item=call)
    for piece in pieces:
        yield out.event("response.function_call_arguments.delta", item_id=call["id"], output_index=index,
                        delta=piece, obfuscation=reply.obfuscation())
    yield out.event("response.function_call_arguments.done", item_id=call["id"], output_index=index,
                    arguments=arguments)
    done = {**call, "status": "completed", "arguments": arguments}
    output.append(done)
    yield out.event("response.output_item.done", output_index=index, item=done)
    record.tokens_sent = answered + len(pieces)
    yield out.event("response.completed", response=out.response("completed", output,
                                                                 usage=out.usage(answered + len(pieces), 0)))


async def _chat_tool_sse(reply: _Reply, turn: Turn, record: RequestRecord) -> AsyncIterator[bytes]:
    out = _ChatStream(reply)
    yield out.delta({"role": "assistant", "content": "", "refusal": None})
    answered = 0
    async for _thought, text in _paced(reply, record):
        answered += 1
        yield out.delta({"content": text})
    _, pieces = _argument_pieces(turn)
    yield out.delta({"tool_calls": [{"index": 0, "id": call_id("call_"), "type": "function",
                                     "function": {"name": turn.tool, "arguments": ""}}]})
    for piece in pieces:
        yield out.delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    record.tokens_sent = answered + len(pieces)
    yield out.delta({}, finish="tool_calls")
    if reply.include_usage:
        yield out.chunk([], usage=out.usage(answered + len(pieces), 0))
    yield sse_event("[DONE]")


_TOOL_STREAMS = {"responses": _responses_tool_sse, "chat": _chat_tool_sse}


# -- routes -----------------------------------------------------------------------------------------------------------

_Streams = dict[bool, Callable[[_Reply, RequestRecord], AsyncIterator[bytes]]]


def routes(ctx: EmulatorContext) -> list[BaseRoute]:
    def endpoint(api: str, streams: _Streams) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response | StreamingBody:
            raw = await request.body()
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            record = ctx.open_record(VENDOR, request, body)
            behaviour = ctx.behaviour_for(VENDOR)
            key = _bearer_key(request)
            if not key:
                return _error_response(ctx, InjectedError(status=401, type="missing_key", message=_NO_KEY_MESSAGE),
                                       record)
            if not isinstance(body, dict):
                return _error_response(ctx, InjectedError(status=400, message=(
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
                    "valid JSON.")), record)
            model = str(body.get("model") or "")
            if (problem := openai_problem(body, api)) is not None:
                return _error_response(ctx, InjectedError(status=400, body=problem), record, model=model, key=key,
                                       api=api)
            streaming = body.get("stream") is True
            # A non-streaming call cannot fail halfway: its error (even one scripted mid-stream) is the whole answer.
            if behaviour.error is not None and (behaviour.error_after_tokens is None or not streaming):
                await anyio.sleep(behaviour.first_token_delay_s(ctx.rng))
                return _error_response(ctx, behaviour.error, record, model=model, key=key, api=api)
            turn = ctx.scripted_turn(VENDOR, record, _tool_results(body, api), bool(body.get("tools")))
            if turn is not None:
                behaviour = behaviour.model_copy(update={"reply": turn.say or "", "thinking": None})
            reply = _Reply(ctx, behaviour, body, api)
            headers = _request_headers(ctx)
            if turn is not None and turn.tool is not None and streaming:
                tool_turn, tool_stream = turn, _TOOL_STREAMS[api]
                return StreamingBody(lambda: tool_stream(reply, tool_turn, record), record, headers=headers,
                                     split_utf8=behaviour.split_utf8)
            if not streaming:
                return StreamingBody(lambda: streams[False](reply, record), record, split_utf8=behaviour.split_utf8,
                                     headers={**headers, "content-type": "application/json"})
            return StreamingBody(lambda: streams[True](reply, record), record, headers=headers,
                                 split_utf8=behaviour.split_utf8)

        return handle

    async def list_models(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        behaviour = ctx.behaviour_for(VENDOR)
        key = _bearer_key(request)
        if not key:
            return _error_response(ctx, InjectedError(status=401, type="missing_key", message=_NO_KEY_MESSAGE),
                                   record)
        if behaviour.error is not None:
            return _error_response(ctx, behaviour.error, record, key=key)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse({"object": "list", "data": MODELS}, headers=_request_headers(ctx))

    async def get_model(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        name = request.path_params["model"]
        found = next((m for m in MODELS if m["id"] == name), None)
        if found is None:
            return _error_response(ctx, InjectedError(status=404, type="model_not_found"), record, model=name)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse(found, headers=_request_headers(ctx))

    return [
        Route("/v1/responses", endpoint("responses", {True: _responses_sse, False: _responses_whole}),
              methods=["POST"]),
        Route("/v1/chat/completions", endpoint("chat", {True: _chat_sse, False: _chat_whole}), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    ]
