"""The one error tree shared by every LLMMixer server and the orchestrator.

    LLMMixerError                      kind, message, vendor, status, retry_after_s, retryable (from kind)
    ├── BadRequestError                bad_request
    ├── ContextLengthError             context_length
    ├── AuthError                      auth
    ├── PermissionDeniedError          permission
    ├── NotFoundError                  not_found
    ├── QuotaError                     quota
    ├── ContentFilterError             content_filter
    ├── CancelledError                 cancelled
    ├── PolicyError                    policy
    ├── InvalidInputError              invalid_input
    ├── InvalidOutputError             invalid_output
    ├── BudgetError                    budget: a run's cost cap or the daily budget (settings.budget)
    ├── ConflictError                  conflict: a change that does not fit the tree it is applied to
    └── RetryableError                 retryable = True
        ├── RateLimitError             rate_limit
        ├── OverloadedError            overloaded
        ├── ServerError                server
        │   └── UnexpectedError        server: a failure nobody anticipated (a bug, an unknown SDK exception)
        ├── UnavailableError           unavailable
        ├── ConnectTimeoutError        timeout
        └── ConnectionFailedError      connection

``TimeoutError_``, ``ConnectionError_``, ``PermissionError_`` and ``CancelledError_`` are the old names of
``ConnectTimeoutError``, ``ConnectionFailedError``, ``PermissionDeniedError`` and ``CancelledError``, kept as
aliases. (``CancelledError`` here is ours, not asyncio's: import it qualified where both are in reach.)

``retryable`` is not set per class: it is derived from ``kind`` alone (:data:`RETRYABLE_KINDS`), so a class, an
instance and the wire form can never disagree, and a class whose kind is retryable must sit under
:class:`RetryableError` (checked when the class is defined).

Vendor exceptions are mapped to this tree at one boundary inside each adapter; nothing above an adapter ever
sees an SDK exception type. Tools are mapped at the MCP boundary (``core/mcp.py``). On the wire an error is
``{"error": {...}}`` (see :meth:`LLMMixerError.to_dict`), and :func:`error_from_dict` turns it back into the same
class on the other side of an MCP boundary.

Two helpers every adapter shares: :func:`retry_after_s` reads how long a vendor asked us to wait from its headers,
and :func:`redact` (``redact.redact_secrets``) takes a key out of a message a vendor echoed back.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self, cast

from .bounds import bounded_seconds
from .redact import redact_secrets as redact

__all__ = [
    "ErrorKind",
    "RETRYABLE_KINDS",
    "LLMMixerError",
    "RetryableError",
    "BadRequestError",
    "ContextLengthError",
    "AuthError",
    "PermissionDeniedError",
    "NotFoundError",
    "QuotaError",
    "ContentFilterError",
    "CancelledError",
    "PolicyError",
    "InvalidInputError",
    "InvalidOutputError",
    "BudgetError",
    "ConflictError",
    "RateLimitError",
    "OverloadedError",
    "ServerError",
    "UnexpectedError",
    "UnavailableError",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "PermissionError_",
    "CancelledError_",
    "TimeoutError_",
    "ConnectionError_",
    "error_class",
    "error_from_dict",
    "classified",
    "retry_after_s",
    "redact",
]


class ErrorKind(str, enum.Enum):
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH = "context_length"
    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    OVERLOADED = "overloaded"
    SERVER = "server"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CONTENT_FILTER = "content_filter"
    CANCELLED = "cancelled"
    POLICY = "policy"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    BUDGET = "budget"
    CONFLICT = "conflict"


# The one place that says which kinds are worth retrying (or falling back from).
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset({
    ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED, ErrorKind.SERVER, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT,
    ErrorKind.CONNECTION,
})


class LLMMixerError(Exception):
    """Base of every classified error. Catch subclasses, never parse ``str(exc)``."""

    kind: ClassVar[ErrorKind] = ErrorKind.SERVER
    retryable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.retryable = cls.kind in RETRYABLE_KINDS
        if cls.__name__ != "RetryableError" and cls.retryable != issubclass(cls, RetryableError):
            raise TypeError(f"{cls.__name__}: kind {cls.kind.value!r} is {'' if cls.retryable else 'not '}retryable, "
                            f"so the class must {'' if cls.retryable else 'not '}derive from RetryableError")

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The base is not a leaf: raising it directly means nobody classified the failure.
        target = cast("type[Self]", UnexpectedError) if cls is LLMMixerError else cls
        return super().__new__(target, *args)

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.status = status
        # Every wait a vendor (or a peer's wire error) asks for enters here: finite, at most an hour.
        self.retry_after_s = bounded_seconds(retry_after_s, f"the retry-after {vendor or 'a server'} asked for")
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``{"error": {"kind", "message", "vendor", "status", "retry_after_s", "retryable"}}``."""
        body: dict[str, Any] = {
            "kind": self.kind.value,
            "message": self.message,
            "vendor": self.vendor,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "retryable": self.kind in RETRYABLE_KINDS,
        }
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind.value!r}, message={self.message!r}, vendor={self.vendor!r})"


class RetryableError(LLMMixerError):
    """An error worth retrying (before the first delta was sent) or falling back from."""

    kind = ErrorKind.SERVER


class BadRequestError(LLMMixerError):
    kind = ErrorKind.BAD_REQUEST


class ContextLengthError(LLMMixerError):
    kind = ErrorKind.CONTEXT_LENGTH


class AuthError(LLMMixerError):
    kind = ErrorKind.AUTH


class PermissionDeniedError(LLMMixerError):
    kind = ErrorKind.PERMISSION


class NotFoundError(LLMMixerError):
    kind = ErrorKind.NOT_FOUND


class QuotaError(LLMMixerError):
    kind = ErrorKind.QUOTA


class ContentFilterError(LLMMixerError):
    kind = ErrorKind.CONTENT_FILTER


class CancelledError(LLMMixerError):
    kind = ErrorKind.CANCELLED


class PolicyError(LLMMixerError):
    kind = ErrorKind.POLICY


class InvalidInputError(LLMMixerError):
    kind = ErrorKind.INVALID_INPUT


class InvalidOutputError(LLMMixerError):
    kind = ErrorKind.INVALID_OUTPUT


class BudgetError(LLMMixerError):
    """A run refused because its estimate is over its ``max_cost_usd``, or the day's budget is used up."""

    kind = ErrorKind.BUDGET


class ConflictError(LLMMixerError):
    """A change that does not fit where it is applied (a kept agent leg's diff against the user's tree)."""

    kind = ErrorKind.CONFLICT


class RateLimitError(RetryableError):
    kind = ErrorKind.RATE_LIMIT


class OverloadedError(RetryableError):
    kind = ErrorKind.OVERLOADED


class ServerError(RetryableError):
    kind = ErrorKind.SERVER


class UnexpectedError(ServerError):
    """What nobody anticipated: a crash in a tool, an SDK exception no table knows. Logged with its traceback.

    Its kind is ``server`` (so a fallback moves on to the next leg), but an adapter does not retry it locally:
    the same bug would only repeat.
    """


class UnavailableError(RetryableError):
    kind = ErrorKind.UNAVAILABLE


class ConnectTimeoutError(RetryableError):
    kind = ErrorKind.TIMEOUT


class ConnectionFailedError(RetryableError):
    kind = ErrorKind.CONNECTION


# Old names, kept for callers written before the rename.
PermissionError_ = PermissionDeniedError
CancelledError_ = CancelledError
TimeoutError_ = ConnectTimeoutError
ConnectionError_ = ConnectionFailedError

_BY_KIND: dict[ErrorKind, type[LLMMixerError]] = {
    cls.kind: cls
    for cls in (
        BadRequestError,
        ContextLengthError,
        AuthError,
        PermissionDeniedError,
        NotFoundError,
        QuotaError,
        ContentFilterError,
        CancelledError,
        PolicyError,
        InvalidInputError,
        InvalidOutputError,
        BudgetError,
        ConflictError,
        RateLimitError,
        OverloadedError,
        ServerError,
        UnavailableError,
        ConnectTimeoutError,
        ConnectionFailedError,
    )
}


def error_class(kind: ErrorKind | str) -> type[LLMMixerError]:
    """The class for a kind (``"rate_limit"`` -> :class:`RateLimitError`)."""
    return _BY_KIND[ErrorKind(kind)]


@contextlib.contextmanager
def classified(classify: Callable[[Exception], LLMMixerError], *, secrets: Iterable[str | None] = ()
               ) -> Iterator[None]:
    """Re-raise any exception as the :class:`LLMMixerError` that ``classify`` makes of it (``raise ... from exc``).

    Each adapter wraps its SDK calls in this, with its own ``classify``: the one boundary where every vendor failure
    is mapped to the shared tree. Errors already classified pass through. Either way the message leaves without
    any of ``secrets`` (the adapter's API key, which a vendor may echo back in an error).

    Raises:
        LLMMixerError: always, for any exception raised inside the block.
    """
    keys = [key for key in secrets if key]
    try:
        yield
    except LLMMixerError as error:
        if keys:
            _scrub(error, keys)
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary's whole purpose
        mapped = classify(exc)
        if keys:
            _scrub(mapped, keys)
        raise mapped from exc


def _scrub(error: LLMMixerError, keys: list[str]) -> None:
    clean = redact(error.message, *keys)
    if clean != error.message:
        error.message = clean
        error.args = (clean,)


# Header names that carry "wait this long", most precise first. ``llm_provider-*`` is how LiteLLM's proxy passes
# the provider's own headers through.
_RETRY_AFTER_MS = ("retry-after-ms", "llm_provider-retry-after-ms")
_RETRY_AFTER = ("retry-after", "llm_provider-retry-after")


def retry_after_s(headers: Mapping[str, str] | Any | None, *, now: float | None = None) -> float | None:
    """How long the server asked us to wait, from its headers; ``None`` if it did not say (or said nonsense).

    Reads ``retry-after-ms`` (milliseconds), then ``retry-after`` as seconds or as an HTTP date (RFC 9110), and the
    same two under LiteLLM's ``llm_provider-`` prefix. Every adapter reads a 429 and a 503 through this. The
    value is finite; the error that carries it clamps it to ``bounds.MAX_WAIT_S``.
    """
    if not headers:
        return None
    try:
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    except AttributeError:
        return None
    for name in _RETRY_AFTER_MS:
        if (value := _seconds(lowered.get(name))) is not None:
            return value / 1000
    for name in _RETRY_AFTER:
        raw = lowered.get(name)
        if raw is None:
            continue
        if (value := _seconds(raw)) is not None:
            return value
        import email.utils  # an HTTP date is rare; its parser costs every process ~6 ms of imports at start

        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            continue
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return None


def _seconds(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def error_from_dict(payload: dict[str, Any]) -> LLMMixerError:
    """Rebuild an error from its wire form (with or without the outer ``{"error": ...}``).

    An unknown kind becomes a :class:`ServerError` so a newer peer never crashes an older one.
    """
    body = payload.get("error", payload)
    try:
        cls = error_class(body.get("kind", "server"))
    except ValueError:
        cls = ServerError
    return cls(
        str(body.get("message", "")),
        vendor=body.get("vendor"),
        status=body.get("status"),
        retry_after_s=body.get("retry_after_s"),
        details=body.get("details"),
    )
