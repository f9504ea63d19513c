"""The web app's front door: bind rules, token, Host/Origin checks and the request-body cap.

One pure ASGI middleware (streaming-safe: it never buffers a response) checks, in order:

1. **Host** — on a loopback bind only loopback names are accepted, so a DNS-rebinding page (``evil.example``
   resolving to 127.0.0.1) is refused even though its requests carry a matching ``Origin``.
2. **Origin** — a request whose ``Origin`` is present and is not the server's own (``scheme://Host``) is refused
   with 403. Browsers always send ``Origin`` on cross-site fetches, EventSource and form posts.
3. **Token** — when a token is configured (required for any non-loopback bind), every ``/api/*`` and ``/events``
   request must carry ``Authorization: Bearer <token>`` or the ``llmmixer_token`` cookie. Visiting ``/?token=...``
   once sets that cookie (HttpOnly, SameSite=Strict) and redirects to ``/`` so the token leaves the address bar.
   The dashboard's static files and ``/healthz`` hold nothing secret and stay open.
4. **Body cap** — a declared ``Content-Length`` over the cap is refused at once with 413; a chunked body is
   counted as it is read and refused the moment it crosses the cap.

Every refusal is JSON in the shared error shape, ``{"error": {"kind", "message", "status", ...}}``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmmixer.servers.core.errors import (
    AuthError,
    InvalidInputError,
    LLMMixerError,
    PermissionError_,
)
from llmmixer.servers.core.transport import TOKEN_ENV, is_loopback

__all__ = [
    "COOKIE_NAME",
    "DEFAULT_MAX_BODY",
    "SecurityPolicy",
    "SecurityMiddleware",
    "BindRefused",
    "BodyTooLarge",
    "too_large_response",
    "check_bind",
    "error_response",
]

COOKIE_NAME = "llmmixer_token"
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a prompt, never a file upload
LOOPBACK_HOSTNAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# Paths that need the token when one is set. Everything else is the dashboard's own static shell.
PROTECTED_PREFIXES = ("/api/", "/api", "/events")


class BindRefused(RuntimeError):
    """A non-loopback bind without ``LLMMIXER_TOKEN``: the server refuses to start."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token.

    Raises:
        BindRefused: ``host`` is not loopback and ``token`` is empty; the message names the variable to set.
    """
    if not is_loopback(host) and not token:
        raise BindRefused(f"refusing to bind {host}: a non-loopback bind requires ${TOKEN_ENV} "
                          "(every API and SSE request must then carry it)")


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """What the front door enforces. Build it with :meth:`for_bind` so the bind rules are applied once."""

    host: str = "127.0.0.1"
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    # Extra origins allowed besides the server's own (e.g. a reverse proxy's public URL).
    extra_origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_bind(cls, host: str, *, token: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 extra_origins: Iterable[str] = (), env: bool = True) -> SecurityPolicy:
        """The policy for serving on ``host``; ``token`` defaults to ``$LLMMIXER_TOKEN``.

        Raises:
            BindRefused: non-loopback ``host`` and no token.
        """
        if token is None and env:
            token = os.environ.get(TOKEN_ENV) or None
        check_bind(host, token)
        return cls(host=host, token=token, max_body=max_body,
                   extra_origins=frozenset(o.rstrip("/").lower() for o in extra_origins))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def error_response(error: LLMMixerError, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one JSON error shape every web refusal and API error uses."""
    if error.status is None:
        error.status = status
    return JSONResponse(error.to_dict(), status_code=status, headers=headers)


def too_large_response(cap: int) -> JSONResponse:
    # No "Connection: close": the server then discards the rest of the upload and the client, still sending,
    # gets to read this answer instead of a connection reset.
    return error_response(InvalidInputError(f"request body larger than {cap} bytes"), 413)


class BodyTooLarge(Exception):
    """Raised from the wrapped ``receive`` when a streamed (chunked) body crosses the cap.

    The app registers a handler for it (``api.exception_handlers``) so it becomes a 413 JSON error even
    when raised deep inside an endpoint; the middleware catches it too for apps without that handler.
    """

    def __init__(self, cap: int) -> None:
        super().__init__(f"request body larger than {cap} bytes")
        self.cap = cap


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _hostname(host_header: str) -> str:
    """``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """Pure ASGI guard in front of the whole app (see the module docstring for the checks and their order)."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy
        self._expected_bearer = f"Bearer {policy.token}".encode() if policy.token else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.policy.token and scope["path"] == "/" and "token" in _query(scope):
            await self._set_cookie(scope, receive, send)
            return
        await self._with_body_cap(scope, receive, send, headers)

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        host_header = headers.get("host", "")
        if self.policy.loopback and _hostname(host_header) not in LOOPBACK_HOSTNAMES:
            return error_response(PermissionError_(
                f"host {host_header!r} refused: this server answers only to loopback names"), 403)
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, scope, host_header):
            return error_response(PermissionError_(
                f"origin {origin!r} refused: only the dashboard's own origin may call this server"), 403)
        if self.policy.token and scope["path"].startswith(PROTECTED_PREFIXES) and not self._authorised(headers):
            return error_response(AuthError(
                f"missing or wrong token: send 'Authorization: Bearer <${TOKEN_ENV}>' "
                "or open /?token=... once in the browser"), 401, headers={"WWW-Authenticate": "Bearer"})
        content_length = headers.get("content-length")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                return error_response(InvalidInputError(f"malformed Content-Length {content_length!r}"), 400)
            if declared > self.policy.max_body:
                return self._too_large()
        return None

    def _origin_allowed(self, origin: str, scope: Scope, host_header: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.policy.extra_origins:
            return True
        parts = urlsplit(origin)
        own_scheme = scope.get("scheme", "http")
        return parts.scheme == own_scheme and parts.netloc == host_header.strip().lower() and bool(parts.netloc)

    def _authorised(self, headers: Headers) -> bool:
        token = self.policy.token or ""
        supplied = headers.get("authorization", "").encode()
        if supplied and hmac.compare_digest(supplied, self._expected_bearer):
            return True
        cookie_header = headers.get("cookie")
        if cookie_header:
            jar = SimpleCookie()
            try:
                jar.load(cookie_header)
            except Exception:  # noqa: BLE001 - a garbled cookie header just means "no token"
                return False
            morsel = jar.get(COOKIE_NAME)
            if morsel is not None and hmac.compare_digest(morsel.value.encode(), token.encode()):
                return True
        return False

    async def _set_cookie(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/?token=...``: a right token becomes an HttpOnly cookie; the redirect drops it from the URL."""
        supplied = _query(scope).get("token", [""])[0]
        if not hmac.compare_digest(supplied.encode(), (self.policy.token or "").encode()):
            await error_response(AuthError(f"wrong token (compare with ${TOKEN_ENV})"), 401)(scope, receive, send)
            return
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE_NAME, supplied, httponly=True, samesite="strict", path="/",
                            secure=scope.get("scheme") == "https")
        await response(scope, receive, send)

    def _too_large(self) -> JSONResponse:
        return too_large_response(self.policy.max_body)

    async def _with_body_cap(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        cap = self.policy.max_body
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge(cap)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large()(scope, receive, send)
