"""The one error tree shared by every LLMMixer server and the orchestrator.

    LLMMixerError                      kind, message, vendor, status, retry_after_s
    ├── BadRequestError                bad_request
    ├── ContextLengthError             context_length
    ├── AuthError                      auth
    ├── PermissionError_               permission
    ├── NotFoundError                  not_found
    ├── QuotaError                     quota
    ├── ContentFilterError             content_filter
    ├── CancelledError_                cancelled
    ├── PolicyError                    policy
    ├── InvalidInputError              invalid_input
    ├── InvalidOutputError             invalid_output
    └── RetryableError                 retryable = True
        ├── RateLimitError             rate_limit
        ├── OverloadedError            overloaded
        ├── ServerError                server
        ├── UnavailableError           unavailable
        ├── TimeoutError_              timeout
        └── ConnectionError_           connection

Vendor exceptions are mapped to this tree at one boundary inside each adapter; nothing above an adapter ever
sees an SDK exception type. On the wire an error is ``{"error": {...}}`` (see :meth:`LLMMixerError.to_dict`),
and :func:`error_from_dict` turns it back into the same class on the other side of an MCP boundary.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "ErrorKind",
    "LLMMixerError",
    "RetryableError",
    "BadRequestError",
    "ContextLengthError",
    "AuthError",
    "PermissionError_",
    "NotFoundError",
    "QuotaError",
    "ContentFilterError",
    "CancelledError_",
    "PolicyError",
    "InvalidInputError",
    "InvalidOutputError",
    "RateLimitError",
    "OverloadedError",
    "ServerError",
    "UnavailableError",
    "TimeoutError_",
    "ConnectionError_",
    "error_class",
    "error_from_dict",
    "classified",
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


class LLMMixerError(Exception):
    """Base of every classified error. Catch subclasses, never parse ``str(exc)``."""

    kind: ErrorKind = ErrorKind.SERVER
    retryable: bool = False

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
        self.retry_after_s = retry_after_s
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``{"error": {"kind", "message", "vendor", "status", "retry_after_s", "retryable"}}``."""
        body: dict[str, Any] = {
            "kind": self.kind.value,
            "message": self.message,
            "vendor": self.vendor,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "retryable": self.retryable,
        }
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind.value!r}, message={self.message!r}, vendor={self.vendor!r})"


class RetryableError(LLMMixerError):
    """An error worth retrying (before the first delta was sent) or falling back from."""

    retryable = True


class BadRequestError(LLMMixerError):
    kind = ErrorKind.BAD_REQUEST


class ContextLengthError(LLMMixerError):
    kind = ErrorKind.CONTEXT_LENGTH


class AuthError(LLMMixerError):
    kind = ErrorKind.AUTH


class PermissionError_(LLMMixerError):
    kind = ErrorKind.PERMISSION


class NotFoundError(LLMMixerError):
    kind = ErrorKind.NOT_FOUND


class QuotaError(LLMMixerError):
    kind = ErrorKind.QUOTA


class ContentFilterError(LLMMixerError):
    kind = ErrorKind.CONTENT_FILTER


class CancelledError_(LLMMixerError):
    kind = ErrorKind.CANCELLED


class PolicyError(LLMMixerError):
    kind = ErrorKind.POLICY


class InvalidInputError(LLMMixerError):
    kind = ErrorKind.INVALID_INPUT


class InvalidOutputError(LLMMixerError):
    kind = ErrorKind.INVALID_OUTPUT


class RateLimitError(RetryableError):
    kind = ErrorKind.RATE_LIMIT


class OverloadedError(RetryableError):
    kind = ErrorKind.OVERLOADED


class ServerError(RetryableError):
    kind = ErrorKind.SERVER


class UnavailableError(RetryableError):
    kind = ErrorKind.UNAVAILABLE


class TimeoutError_(RetryableError):
    kind = ErrorKind.TIMEOUT


class ConnectionError_(RetryableError):
    kind = ErrorKind.CONNECTION


_BY_KIND: dict[ErrorKind, type[LLMMixerError]] = {
    cls.kind: cls
    for cls in (
        BadRequestError,
        ContextLengthError,
        AuthError,
        PermissionError_,
        NotFoundError,
        QuotaError,
        ContentFilterError,
        CancelledError_,
        PolicyError,
        InvalidInputError,
        InvalidOutputError,
        RateLimitError,
        OverloadedError,
        ServerError,
        UnavailableError,
        TimeoutError_,
        ConnectionError_,
    )
}


def error_class(kind: ErrorKind | str) -> type[LLMMixerError]:
    """The class for a kind (``"rate_limit"`` -> :class:`RateLimitError`)."""
    return _BY_KIND[ErrorKind(kind)]


@contextlib.contextmanager
def classified(classify: Callable[[Exception], LLMMixerError]) -> Iterator[None]:
    """Re-raise any exception as the :class:`LLMMixerError` that ``classify`` makes of it (``raise ... from exc``).

    Each adapter wraps its SDK calls in this, with its own ``classify``: the one boundary where every vendor failure
    is mapped to the shared tree. Errors already classified pass through untouched.
    """
    try:
        yield
    except LLMMixerError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary's whole purpose
        raise classify(exc) from exc


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
