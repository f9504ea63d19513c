"""openai SDK exceptions and in-stream failures -> the shared error tree, at one boundary.

The OpenAI API answers a failed request with ``{"error": {"message", "type", "param", "code"}}`` and a status; the
SDK raises one ``APIStatusError`` subclass per status with ``type``/``code`` read from that object. A failure after
the stream started arrives three ways, all classified by :func:`from_error_object`:

- an ``event: error`` whose data nests the error object (the live service's shape): the SDK raises a bare
  ``APIError`` (no status) with that object as ``body``;
- the same event with the fields flat (the API reference's shape): the SDK yields a ``ResponseErrorEvent``;
- ``response.failed`` with ``response.error`` ``{"code", "message"}``.

Rate limit vs quota: both are 429. ``insufficient_quota`` (in ``type`` or ``code``) means billing, which waiting does
not fix, so it is ``quota``; any other 429 is ``rate_limit`` with ``retry_after_s`` from ``retry-after-ms``, then
``retry-after`` (seconds or an HTTP date), then the ``x-ratelimit-reset-*`` header of the exhausted limit.

A 401 for a wrong key quotes the key (masked) in its message; messages are scrubbed of it and of the key itself.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import openai
from pydantic import ValidationError

from ..core.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ContentFilterError,
    ContextLengthError,
    LLMMixerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    UnavailableError,
    UnexpectedError,
    classified,
)
from ..core.errors import redact as redact_secrets
from ..core.errors import retry_after_s as header_retry_after_s

__all__ = ["VENDOR", "KEY_HINT", "map_vendor_errors", "from_exception", "from_error_object", "retry_after_s",
           "redact"]

VENDOR = "openai"
KEY_HINT = "set OPENAI_API_KEY"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|h|m|s))+$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUOTED_KEY = re.compile(r"(API key provided:\s*)\S+")
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_CONTEXT_MESSAGE = re.compile(r"maximum context length|context window|too many tokens|prompt is too long",
                              re.IGNORECASE)
_QUOTA = "insufficient_quota"
_RATE_LIMIT_CODES = {"rate_limit_exceeded", "too_many_requests", "requests", "tokens"}
# In-stream codes of a response that a usage-policy check stopped.
_POLICY_CODES = {"invalid_prompt", "bio_policy", "misalignment_policy_violation", "image_content_policy_violation",
                 "content_filter", "content_policy_violation"}


def _duration_s(value: str) -> float | None:
    """``x-ratelimit-reset-*`` durations: ``"250ms"``, ``"1s"``, ``"6m0s"``, ``"1h2m3.5s"``."""
    value = value.strip()
    if not _DURATION.match(value):
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in _DURATION_PART.findall(value))


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """How long the API asked us to wait: the shared headers (core), else the exhausted limit's reset header."""
    if not headers:
        return None
    if (wait := header_retry_after_s(headers)) is not None:
        return wait
    resets = [_duration_s(headers.get(f"x-ratelimit-reset-{limit}", ""))
              for limit in ("requests", "tokens") if headers.get(f"x-ratelimit-remaining-{limit}") == "0"]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


def redact(message: str, secret: str | None) -> str:
    """``message`` without the API key, whole or as the masked form a 401 quotes."""
    return _QUOTED_KEY.sub(r"\1[redacted]", redact_secrets(message, secret))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def from_error_object(error: Mapping[str, Any], *, status: int | None = None, headers: Mapping[str, str] | None = None,
                      secret: str | None = None) -> LLMMixerError:
    """Classify one OpenAI error object (``{"message", "type", "param", "code"}``), with the HTTP status if any.

    Without a status (an in-stream failure) the ``code`` / ``type`` alone decide.
    """
    etype, code = _text(error.get("type")), _text(error.get("code"))
    message = redact(_text(error.get("message")), secret) or (f"HTTP {status}" if status else "the stream failed")
    label = code or etype
    text = f"{label}: {message}" if label and label not in message else message
    details = {key: value for key, value in (("vendor_type", etype), ("vendor_code", code)) if value}

    # Retry-After is honoured on any status (a 503 sends it too); the reset headers only explain a 429.
    wait = header_retry_after_s(headers) if headers else None

    def build(cls: type[LLMMixerError], msg: str = text, retry: float | None = wait) -> LLMMixerError:
        return cls(msg, vendor=VENDOR, status=status, retry_after_s=retry, details=details)

    if _QUOTA in (etype, code):
        return build(QuotaError, f"{text} (the account's quota or billing limit is reached; waiting will not help)")
    if status == 401 or code == "invalid_api_key":
        return build(AuthError, f"{text} ({KEY_HINT} to a valid key)")
    if code in _CONTEXT_CODES or (status in (400, None) and _CONTEXT_MESSAGE.search(message)):
        return build(ContextLengthError)
    if code in _POLICY_CODES:
        return build(ContentFilterError)
    if status == 429 or code in _RATE_LIMIT_CODES or (status is None and etype in _RATE_LIMIT_CODES):
        return build(RateLimitError, retry=retry_after_s(headers))
    if "overloaded" in f"{etype} {code}":
        return build(OverloadedError)
    if code == "vector_store_timeout":
        return build(ConnectTimeoutError)
    if status is None:
        if etype == "invalid_request_error":
            return build(BadRequestError)
        return build(ServerError)  # an unexplained in-stream failure: the service's side, worth another try
    if status == 403:
        return build(PermissionDeniedError)
    if status == 404:
        return build(NotFoundError)
    if status in (408, 504):
        return build(ConnectTimeoutError)
    if status == 503:
        return build(UnavailableError)
    if status >= 500 or status == 409:  # 409: a lock held by a concurrent request; the SDK itself retries it
        return build(ServerError)
    return build(BadRequestError)


def _status_error(exc: openai.APIStatusError, secret: str | None) -> LLMMixerError:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if not isinstance(body, Mapping):  # a proxy's HTML page or an empty body
        body = {"message": f"HTTP {exc.status_code}: {_text(body)[:200]}".rstrip(": ")}
    return from_error_object(body, status=exc.status_code, headers=exc.response.headers, secret=secret)


def from_exception(exc: BaseException, secret: str | None = None) -> LLMMixerError:
    """The classified error for anything the SDK or its HTTP client raised (most specific match wins)."""
    if isinstance(exc, LLMMixerError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        return ConnectTimeoutError("timed out waiting for the OpenAI API (read or connect timeout)", vendor=VENDOR)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = f"{type(cause).__name__}: {cause}" if cause else exc.message
        return ConnectionFailedError(redact(f"connection to the OpenAI API failed: {reason}", secret), vendor=VENDOR)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, secret)
    if isinstance(exc, openai.APIResponseValidationError):
        return ServerError(f"the OpenAI API sent a reply that could not be read: {name}", vendor=VENDOR,
                           status=exc.status_code)
    if isinstance(exc, openai.APIError):  # an error object sent inside the stream
        body = exc.body if isinstance(exc.body, Mapping) else {"message": exc.message}
        return from_error_object(body, secret=secret)
    if isinstance(exc, httpx2.TimeoutException):
        return ConnectTimeoutError(f"timed out waiting for the OpenAI API ({name})", vendor=VENDOR)
    if isinstance(exc, (httpx2.TransportError, httpx2.DecodingError)):
        return ConnectionFailedError(redact(f"connection to the OpenAI API failed: {name}: {exc}", secret), vendor=VENDOR)
    if isinstance(exc, (json.JSONDecodeError, ValidationError)):
        return ServerError(f"the OpenAI API sent a reply that could not be read: {name}", vendor=VENDOR)
    # Unknown failures are not retried: retrying a bug only multiplies it.
    return UnexpectedError(redact(f"unexpected {name} from the OpenAI SDK: {exc}", secret), vendor=VENDOR)


def map_vendor_errors(secret: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Re-raise any SDK or transport exception as its :class:`LLMMixerError` (``raise ... from exc``)."""
    return classified(lambda exc: from_exception(exc, secret), secrets=(secret,))
