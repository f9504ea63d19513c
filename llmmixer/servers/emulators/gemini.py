"""The Gemini API (Google AI for Developers) as the google-genai SDK sees it.

Routes (under ``/gemini``; both API versions, since SDK 3.x calls ``v1`` and older clients ``v1beta``):

    POST {v}/models/{model}:streamGenerateContent?alt=sse   SSE, one ``data: {GenerateContentResponse}`` per chunk
    POST {v}/models/{model}:generateContent                 one GenerateContentResponse
    GET  {v}/models[?pageSize=&pageToken=]                  {"models": [...], "nextPageToken"}

Wire details copied from the live service:

- SSE frames end in ``\\r\\n``; there are no event names and no keepalives. Every chunk carries ``modelVersion``,
  ``responseId`` and ``usageMetadata`` (prompt count only until the last chunk); the last chunk has an empty text
  part, ``finishReason`` and the full usage (``thoughtsTokenCount`` when the model thought).
- Thought parts are ``{"text": ..., "thought": true}`` and come before the answer.
- Errors are ``{"error": {"code", "message", "status", "details": [...]}}`` with google.rpc detail types
  (``ErrorInfo`` reason ``API_KEY_INVALID``, ``RetryInfo`` ``retryDelay: "12s"``, ``QuotaFailure`` violations). A
  mid-stream error is the same object sent as one more ``data:`` line, then the stream ends.
- A prompt the safety filter blocks is a 200 whose only chunk has ``promptFeedback.blockReason`` and no candidates.

Scripted turns (script.py): a request that declares ``tools`` is answered by the vendor's script, if one is set:
its text as a text part, then its tool call as a ``functionCall`` part (``name``, ``args``, ``id``) in the last
chunk. Results come back as ``functionResponse`` parts. ``{model}:countTokens`` answers ``{"totalTokens": n}``.

Behaviour mapping (see behaviour.py): ``stop_reason`` is the last chunk's ``finishReason`` (``"SAFETY"``,
``"MAX_TOKENS"``...); ``"prompt:SAFETY"`` (any ``BlockedReason`` after the colon) blocks the prompt instead.
``InjectedError.type`` picks the error body: ``API_KEY_INVALID``, ``context_length_exceeded`` (also
``prompt_too_long``/``token_limit``), ``RESOURCE_EXHAUSTED`` (per-minute; ``RetryInfo`` from ``retry_after_s``),
``quota`` / ``insufficient_quota`` / ``daily_quota`` (per-day QuotaFailure); otherwise the status picks it.
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
from .input_checks import gemini_problem
from .recorder import RequestRecord
from .schema_example import example_for_schema
from .script import Turn, call_id
from .streaming import Hang, Reset, StreamingBody, pace, sse_event

__all__ = ["routes", "MODELS", "error_body"]

VENDOR = "gemini"
LINE_END = "\r\n"

MODELS: list[dict[str, Any]] = [
    {"name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
     "description": "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to 1 million "
                    "tokens, released in June of 2025.",
     "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
     "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
     "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True},
    {"name": "models/gemini-2.5-pro", "version": "2.5", "displayName": "Gemini 2.5 Pro",
     "description": "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
     "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
     "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
     "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True},
    {"name": "models/gemini-2.5-flash-lite", "version": "001", "displayName": "Gemini 2.5 Flash-Lite",
     "description": "Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
     "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
     "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
     "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True},
    {"name": "models/gemini-2.0-flash", "version": "2.0", "displayName": "Gemini 2.0 Flash",
     "description": "Gemini 2.0 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
     "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
     "temperature": 1, "topP": 0.95, "topK": 40, "maxTemperature": 2},
    {"name": "models/text-embedding-004", "version": "004", "displayName": "Text Embedding 004",
     "description": "Obtain a distributed representation of a text.", "inputTokenLimit": 2048,
     "outputTokenLimit": 1, "supportedGenerationMethods": ["embedContent"]},
]

# google.rpc.Code names by HTTP status, as the service pairs them.
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                 502: "UNKNOWN", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
         "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    502: "Bad Gateway",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RPC = "type.googleapis.com/google.rpc."
_NO_KEY_MESSAGE = ("Method doesn't allow unregistered callers (callers without established identity). Please use API "
                   "Key or other form of API consumer identity to call this API.")
_CONTEXT_TYPES = {"context_length", "context_length_exceeded", "prompt_too_long", "token_limit"}
_DAILY_QUOTA_TYPES = {"quota", "insufficient_quota", "daily_quota"}
_INPUT_TOKEN_LIMIT = 1048576


def _quota_violation(model: str, per: str, limit: int) -> dict[str, Any]:
    return {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": model}, "quotaValue": str(limit)}


def _retry_delay(seconds: float) -> str:
    """google.protobuf.Duration in JSON: ``"12s"``, ``"1.5s"``."""
    return f"{seconds:g}s"


def error_body(error: InjectedError, model: str = "gemini-2.5-flash") -> tuple[int, dict[str, Any]]:
    """The status and ``{"error": {...}}`` body the live API sends for ``error``."""
    if error.body is not None:
        return error.status, error.body
    kind = (error.type or "").strip()
    status = error.status
    details: list[dict[str, Any]] = []
    if kind == "API_KEY_INVALID":
        status = 400
        message = error.message or "API key not valid. Please pass a valid API key."
        details = [{"@type": _RPC + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}},
                   {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": message}]
    elif kind in _CONTEXT_TYPES:
        status = 400
        message = error.message or (f"The input token count ({_INPUT_TOKEN_LIMIT + 4242}) exceeds the maximum number "
                                    f"of tokens allowed ({_INPUT_TOKEN_LIMIT}).")
    elif kind in _DAILY_QUOTA_TYPES:
        # The free tier's per-day request quota: waiting seconds will not help, though the service still sends
        # a RetryInfo (the time until the window it measured rolls over).
        status = 429
        message = error.message or (
            "You exceeded your current quota, please check your plan and billing details. For more information on "
            "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
            "head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: "
            "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 250, model: " + model)
        details = [{"@type": _RPC + "QuotaFailure", "violations": [_quota_violation(model, "Day", 250)]},
                   {"@type": _RPC + "Help", "links": [{"description": "Learn more about Gemini API quotas",
                                                       "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                   {"@type": _RPC + "RetryInfo", "retryDelay": _retry_delay(error.retry_after_s or 41)}]
    elif status == 429 or kind == "RESOURCE_EXHAUSTED":
        status = 429
        if error.retry_after_s is not None:
            message = error.message or (
                "You exceeded your current quota, please check your plan and billing details. For more information "
                "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current "
                "usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: "
                "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 10, model: "
                f"{model}\nPlease retry in {error.retry_after_s:g}s.")
            details = [{"@type": _RPC + "QuotaFailure", "violations": [_quota_violation(model, "Minute", 10)]},
                       {"@type": _RPC + "Help",
                        "links": [{"description": "Learn more about Gemini API quotas",
                                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                       {"@type": _RPC + "RetryInfo", "retryDelay": _retry_delay(error.retry_after_s)}]
        else:
            message = error.message or _DEFAULT_MESSAGES[429]
    elif status == 404:
        message = error.message or (f"models/{model} is not found for API version v1beta, or is not supported for "
                                    "generateContent. Call ListModels to see the list of available models and their "
                                    "supported methods.")
    else:
        message = error.message or _DEFAULT_MESSAGES.get(status, "Unknown error.")
    body: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        body["details"] = details
    return status, {"error": body}


def _error_response(error: InjectedError, model: str, record: RequestRecord) -> Response:
    status, body = error_body(error, model)
    record.outcome = "error"
    record.ended_at = time.time()
    return JSONResponse(body, status_code=status, headers={"vary": "Origin, X-Origin, Referer", **error.headers})


# -- structured output ---------------------------------------------------------------------------------------------

def _reply_text(behaviour: Behaviour, body: dict[str, Any]) -> str:
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if (schema is None and config.get("responseMimeType") != "application/json") or behaviour.ignore_schema:
        return behaviour.reply
    value = behaviour.reply_json if behaviour.reply_json is not None else example_for_schema(schema or {}, plausible=behaviour.plausible)
    return json.dumps(value, ensure_ascii=False)


# -- responses ------------------------------------------------------------------------------------------------------

class _Reply:
    """Everything one generate request will say, decided up front so both endpoints agree."""

    def __init__(self, ctx: EmulatorContext, behaviour: Behaviour, body: dict[str, Any], model: str) -> None:
        self.behaviour = behaviour
        self.model = model
        self.response_id = "".join(ctx.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                   for _ in range(22))
        self.thoughts = split_tokens(behaviour.thinking) if behaviour.thinking else []
        answer = split_tokens(_reply_text(behaviour, body), behaviour.tokens)
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        self.truncated = isinstance(limit, int) and 0 < limit < len(answer)
        self.answer = answer[:limit] if self.truncated else answer
        self.prompt_tokens = behaviour.input_tokens or max(1, len(json.dumps(body.get("contents", ""))) // 4)
        stop = behaviour.stop_reason or ("MAX_TOKENS" if self.truncated else "STOP")
        self.block_reason = stop.partition(":")[2] if stop.startswith("prompt:") else None
        self.finish_reason = stop

    def usage(self, answered: int | None = None, thought: int | None = None) -> dict[str, Any]:
        if answered is None:  # the early chunks carry the prompt count only, as the service does
            return {"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]}
        usage: dict[str, Any] = {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": answered,
                                 "totalTokenCount": self.prompt_tokens + answered + (thought or 0),
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]}
        if thought:
            usage["thoughtsTokenCount"] = thought
        return usage

    def chunk(self, parts: list[dict[str, Any]], *, finish: bool = False, answered: int = 0, thought: int = 0
              ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = self.finish_reason
            if self.finish_reason == "SAFETY":
                candidate["safetyRatings"] = _safety_ratings(blocked="HARM_CATEGORY_DANGEROUS_CONTENT")
        return {"candidates": [candidate], "usageMetadata": self.usage(answered if finish else None, thought),
                "modelVersion": self.model, "responseId": self.response_id}

    def blocked(self) -> dict[str, Any]:
        return {"promptFeedback": {"blockReason": self.block_reason,
                                   "safetyRatings": _safety_ratings(blocked="HARM_CATEGORY_HARASSMENT")},
                "usageMetadata": self.usage(), "modelVersion": self.model, "responseId": self.response_id}


def _safety_ratings(blocked: str) -> list[dict[str, Any]]:
    categories = ["HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_HARASSMENT",
                  "HARM_CATEGORY_DANGEROUS_CONTENT"]
    return [{"category": c, "probability": "HIGH" if c == blocked else "NEGLIGIBLE",
             **({"blocked": True} if c == blocked else {})} for c in categories]


async def _read_json(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _has_key(request: Request) -> bool:
    return bool(request.headers.get("x-goog-api-key") or request.query_params.get("key"))


def _tool_results(body: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """``(id, function name, response as JSON)`` for every ``functionResponse`` part of the conversation."""
    out: list[tuple[str, str | None, str]] = []
    for content in body.get("contents") or []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            response = part.get("functionResponse") if isinstance(part, dict) else None
            if isinstance(response, dict):
                name = response.get("name")
                cid = str(response.get("id") or f"{name}#{len(out)}")
                out.append((cid, None if name is None else str(name),
                            json.dumps(response.get("response"), ensure_ascii=False)))
    return out


async def _tool_sse(ctx: EmulatorContext, reply: _Reply, turn: Turn, record: RequestRecord) -> AsyncIterator[bytes]:
    answered = 0
    async for _thought, text in _paced_parts(ctx, reply, record):
        answered += 1
        yield sse_event(json.dumps(reply.chunk([{"text": text}]), ensure_ascii=False), line_end=LINE_END)
    call = {"functionCall": {"id": call_id("call_"), "name": turn.tool, "args": turn.args}}
    final = reply.chunk([call], finish=True, answered=answered + 1)
    record.tokens_sent = answered + 1
    yield sse_event(json.dumps(final, ensure_ascii=False), line_end=LINE_END)


def routes(ctx: EmulatorContext) -> list[BaseRoute]:
    async def generate(request: Request) -> Response | StreamingBody:
        model, _, method = request.path_params["target"].partition(":")
        body = await _read_json(request)
        record = ctx.open_record(VENDOR, request, body)
        behaviour = ctx.behaviour_for(VENDOR)
        if method == "countTokens" and body is not None and _has_key(request):
            record.outcome, record.ended_at = "completed", time.time()
            return JSONResponse({"totalTokens": max(1, len(json.dumps(body.get("contents", ""))) // 4)})
        if method not in ("streamGenerateContent", "generateContent"):
            return _error_response(InjectedError(status=404, message=f"Method not found: {method}"), model, record)
        if not _has_key(request):
            return _error_response(InjectedError(status=403, message=_NO_KEY_MESSAGE), model, record)
        if body is None:
            return _error_response(InjectedError(status=400, message="Invalid JSON payload received."), model, record)
        if (problem := gemini_problem(body, model)) is not None:
            return _error_response(InjectedError(status=400, message=problem), model, record)
        # A non-streaming call cannot fail halfway: its error (even one scripted mid-stream) is the whole answer.
        if behaviour.error is not None and (behaviour.error_after_tokens is None or method == "generateContent"):
            await anyio.sleep(behaviour.first_token_delay_s(ctx.rng))
            return _error_response(behaviour.error, model, record)
        turn = ctx.scripted_turn(VENDOR, record, _tool_results(body), bool(body.get("tools")))
        if turn is not None:
            behaviour = behaviour.model_copy(update={"reply": turn.say or "", "thinking": None})
        reply = _Reply(ctx, behaviour, body, model)
        if turn is not None and turn.tool is not None and method == "streamGenerateContent":
            tool_turn = turn
            return StreamingBody(lambda: _tool_sse(ctx, reply, tool_turn, record), record,
                                 split_utf8=behaviour.split_utf8)
        if method == "generateContent":
            return StreamingBody(lambda: _whole(ctx, reply, record), record,
                                 headers={"content-type": "application/json; charset=UTF-8"},
                                 split_utf8=behaviour.split_utf8)
        return StreamingBody(lambda: _sse(ctx, reply, record), record, split_utf8=behaviour.split_utf8)

    async def list_models(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        behaviour = ctx.behaviour_for(VENDOR)
        if not _has_key(request):
            return _error_response(InjectedError(status=403, message=_NO_KEY_MESSAGE), "", record)
        if behaviour.error is not None:
            return _error_response(behaviour.error, "", record)
        try:
            size = max(1, min(int(request.query_params.get("pageSize") or 50), 1000))
            start = int(request.query_params.get("pageToken") or 0)
        except ValueError:
            return _error_response(InjectedError(status=400, message="Invalid page token or page size."), "", record)
        page = MODELS[start:start + size]
        payload: dict[str, Any] = {"models": page}
        if start + size < len(MODELS):
            payload["nextPageToken"] = str(start + size)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse(payload)

    async def get_model(request: Request) -> Response:
        record = ctx.open_record(VENDOR, request, None)
        name = "models/" + request.path_params["target"]
        found = next((m for m in MODELS if m["name"] == name), None)
        if found is None:
            return _error_response(InjectedError(status=404, message=f"{name} is not found"), name, record)
        record.outcome, record.ended_at = "completed", time.time()
        return JSONResponse(found)

    out: list[BaseRoute] = []
    for version in ("v1beta", "v1"):
        out += [
            Route(f"/{version}/models", list_models, methods=["GET"]),
            Route(f"/{version}/models/{{target:path}}", generate, methods=["POST"]),
            Route(f"/{version}/models/{{target:path}}", get_model, methods=["GET"]),
        ]
    return out


async def _paced_parts(ctx: EmulatorContext, reply: _Reply, record: RequestRecord
                       ) -> AsyncIterator[tuple[bool, str]]:
    """``(is_thought, text)`` on the behaviour's schedule; thoughts first, like the service."""
    tokens = [*reply.thoughts, *reply.answer]
    index = 0
    async for token in pace(tokens, reply.behaviour, ctx.rng, record):
        yield index < len(reply.thoughts), token
        index += 1


async def _sse(ctx: EmulatorContext, reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    if reply.block_reason is not None:
        await anyio.sleep(behaviour.first_token_delay_s(ctx.rng))
        yield sse_event(json.dumps(reply.blocked(), ensure_ascii=False), line_end=LINE_END)
        return
    thought = answered = 0
    async for is_thought, text in _paced_parts(ctx, reply, record):
        part: dict[str, Any] = {"text": text, "thought": True} if is_thought else {"text": text}
        thought, answered = thought + is_thought, answered + (not is_thought)
        yield sse_event(json.dumps(reply.chunk([part]), ensure_ascii=False), line_end=LINE_END)
    if behaviour.error is not None:  # error_after_tokens: the service's error object as one more data line
        _, body = error_body(behaviour.error, reply.model)
        record.outcome = "error"
        yield sse_event(json.dumps(body, ensure_ascii=False), line_end=LINE_END)
        return
    final = reply.chunk([{"text": ""}], finish=True, answered=answered, thought=thought)
    yield sse_event(json.dumps(final, ensure_ascii=False), line_end=LINE_END)


async def _whole(ctx: EmulatorContext, reply: _Reply, record: RequestRecord) -> AsyncIterator[bytes]:
    """Non-streaming ``generateContent``: the same reply, gathered into one response."""
    behaviour = reply.behaviour
    if behaviour.hang:
        raise Hang
    if behaviour.reset:
        raise Reset
    if reply.block_reason is not None:
        await anyio.sleep(behaviour.first_token_delay_s(ctx.rng))
        yield json.dumps(reply.blocked(), ensure_ascii=False).encode()
        return
    thoughts: list[str] = []
    answer: list[str] = []
    async for is_thought, text in _paced_parts(ctx, reply, record):
        (thoughts if is_thought else answer).append(text)
    parts = ([{"text": "".join(thoughts), "thought": True}] if thoughts else []) + [{"text": "".join(answer)}]
    whole = reply.chunk(parts, finish=True, answered=len(answer), thought=len(thoughts))
    yield json.dumps(whole, ensure_ascii=False, indent=2).encode()
