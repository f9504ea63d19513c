"""google-genai exceptions -> the shared error tree, at one boundary.

The Gemini API speaks google.rpc: ``{"error": {"code", "message", "status", "details": [...]}}``. The SDK raises
``ClientError`` (4xx) / ``ServerError`` (5xx), both ``APIError`` with ``code``, ``status``, ``message`` and the whole
body as ``details``; the same happens for an error object sent mid-stream as an SSE ``data:`` line. Transport
failures surface as httpx2 exceptions (the SDK's HTTP client).

Rate limit vs quota (both are 429 ``RESOURCE_EXHAUSTED``; the body tells them apart):

- ``quota`` (not retryable): a ``QuotaFailure`` violation on a per-day quota (``quotaId`` ``...PerDay...``) or on a
  limit of ``0`` (the model is not available on this plan), or the same two facts in the message
  (``"limit: 0"``). Waiting seconds will not help, even though the service also sends a ``RetryInfo``.
- ``rate_limit`` (retryable) otherwise: per-minute quotas, and the bare "Resource has been exhausted" of dynamic
  shared quota; ``retry_after_s`` comes from ``RetryInfo.retryDelay`` (``"12s"``), else a ``retry-after`` header.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx2
from google.genai import errors as genai_errors
from pydantic import ValidationError

from ..core.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ContextLengthError,
    LLMMixerError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    UnavailableError,
    UnexpectedError,
    classified,
    retry_after_s,
)

__all__ = ["VENDOR", "map_vendor_errors", "from_exception", "retry_delay_s"]

VENDOR = "google"
KEY_HINT = "set GEMINI_API_KEY (or GOOGLE_API_KEY)"

_RPC = "type.googleapis.com/google.rpc."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_CONTEXT_MESSAGE = re.compile(
    r"input token count .* exceeds the maximum|exceeds the maximum number of tokens|token limit|too long",
    re.IGNORECASE)
_ZERO_LIMIT = re.compile(r"\blimit:\s*0\b")


def retry_delay_s(duration: Any) -> float | None:
    """A google.protobuf.Duration in its JSON form (``"12s"``, ``"0.5s"``) in seconds."""
    match = _DURATION.match(duration) if isinstance(duration, str) else None
    return float(match.group(1)) if match else None


def _error_object(exc: genai_errors.APIError) -> dict[str, Any]:
    body = exc.details
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        return {}
    inner = body.get("error", body)
    return inner if isinstance(inner, dict) else {}


def _details(exc: genai_errors.APIError, kind: str) -> list[dict[str, Any]]:
    details = _error_object(exc).get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == _RPC + kind]


def _header_retry_after(exc: genai_errors.APIError) -> float | None:
    return retry_after_s(getattr(exc.response, "headers", None))


def _is_hard_quota(exc: genai_errors.APIError, message: str) -> bool:
    for failure in _details(exc, "QuotaFailure"):
        for violation in failure.get("violations") or []:
            if not isinstance(violation, dict):
                continue
            quota_id = str(violation.get("quotaId", ""))
            if "PerDay" in quota_id or str(violation.get("quotaValue", "")) == "0":
                return True
    return bool(_ZERO_LIMIT.search(message))


def _from_api_error(exc: genai_errors.APIError) -> LLMMixerError:
    code = int(exc.code or 0)
    rpc_status = str(exc.status or "")
    message = str(exc.message or exc)
    text = f"{rpc_status}: {message}" if rpc_status else message
    extra: dict[str, Any] = {"vendor_status": rpc_status} if rpc_status else {}
    reasons = {str(info.get("reason", "")) for info in _details(exc, "ErrorInfo")}

    def build(cls: type[LLMMixerError], msg: str = text, retry_after_s: float | None = None) -> LLMMixerError:
        return cls(msg, vendor=VENDOR, status=code or None, retry_after_s=retry_after_s, details=extra)

    if "API_KEY_INVALID" in reasons or code == 401 or rpc_status == "UNAUTHENTICATED":
        return build(AuthError, f"{text} ({KEY_HINT} to a valid key)")
    if code == 403 and "unregistered callers" in message:  # the service's answer to a request with no key at all
        return build(AuthError, f"{text} ({KEY_HINT})")
    if code == 400 and _CONTEXT_MESSAGE.search(message):
        return build(ContextLengthError)
    if code == 429 or rpc_status == "RESOURCE_EXHAUSTED":
        retry_after = next((d for d in (retry_delay_s(info.get("retryDelay")) for info in _details(exc, "RetryInfo"))
                            if d is not None), None)
        if retry_after is None:
            retry_after = _header_retry_after(exc)
        if _is_hard_quota(exc, message):
            return build(QuotaError, retry_after_s=retry_after)
        return build(RateLimitError, retry_after_s=retry_after)
    if code == 403:
        return build(PermissionDeniedError)
    if code == 404:
        return build(NotFoundError)
    if code == 503:
        return build(UnavailableError, retry_after_s=_header_retry_after(exc))
    if code == 504 or rpc_status == "DEADLINE_EXCEEDED":
        return build(ConnectTimeoutError)
    if code >= 500:
        return build(ServerError)
    return build(BadRequestError)


def from_exception(exc: BaseException) -> LLMMixerError:
    """The classified error for anything the SDK or its HTTP client raised (most specific match wins)."""
    if isinstance(exc, LLMMixerError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        return _from_api_error(exc)
    name = type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        phase = "connect" if isinstance(exc, httpx2.ConnectTimeout) else "read"
        return ConnectTimeoutError(f"{phase} timeout talking to the Gemini API ({name})", vendor=VENDOR)
    if isinstance(exc, (httpx2.TransportError, httpx2.DecodingError)):
        return ConnectionFailedError(f"connection to the Gemini API failed: {name}: {exc}", vendor=VENDOR)
    if isinstance(exc, (genai_errors.UnknownApiResponseError, json.JSONDecodeError, ValidationError)):
        return ServerError(f"the Gemini API sent a reply that could not be read: {name}", vendor=VENDOR)
    if isinstance(exc, ValueError) and "API key" in str(exc):
        return AuthError(f"no usable API key: {KEY_HINT}", vendor=VENDOR)
    # Unknown failures are not retried: retrying a bug only multiplies it.
    return UnexpectedError(f"unexpected {name} from the Gemini SDK: {exc}", vendor=VENDOR)


def map_vendor_errors(secret: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Re-raise any SDK or transport exception as its :class:`LLMMixerError` (``raise ... from exc``), with the key
    (``secret``) redacted from the message should the service echo it back."""
    return classified(from_exception, secrets=(secret,))
