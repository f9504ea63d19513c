"""The web app's front door: the shared HTTP rules (:mod:`llmmixer.servers.core.security`) plus what only a
browser-facing app needs: the token cookie and the request-body cap.

One pure ASGI middleware checks, in order:

1. **Host** (421), **Origin** (403), **cross-site writes** (403: a ``POST`` needs a JSON body or an
   ``X-LLMMixer`` header) and the **token** (401), exactly as every LLMMixer HTTP face does (see the core module).
   Here the token protects ``/api/*``, ``/events`` and ``/metrics``; it may also come as the ``llmmixer_token`` cookie.
   Visiting ``/?token=...`` once sets that cookie (HttpOnly, SameSite=Strict) and redirects to ``/`` so the token
   leaves the address bar. The dashboard's static files and ``/healthz`` hold nothing secret and stay open.
2. **Body cap** — a declared ``Content-Length`` over the cap is refused at once with 413; a chunked body is
   counted as it is read and refused the moment it crosses the cap.

Only requests that carry a body get the counting ``receive``; every other request (``GET /events`` above all)
gets the server's own ``receive`` and ``send`` untouched, so a long stream pays nothing per chunk here.
Every refusal is JSON in the shared error shape, ``{"error": {"kind", "message", "status", ...}}``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmmixer.servers.core.errors import AuthError, InvalidInputError, LLMMixerError
from llmmixer.servers.core.security import (
    TOKEN_ENV,
    BindRefused,
    HTTPPolicy,
    check_bind,
    send_refusal,
)

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
# Paths that need the token when one is set. Everything else is the dashboard's own static shell.
PROTECTED_PREFIXES = ("/api/", "/api", "/events", "/metrics")
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """The shared :class:`HTTPPolicy` plus the body cap. Build it with :meth:`for_bind`."""

    http: HTTPPolicy
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def for_bind(cls, host: str, *, token: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 extra_origins: Iterable[str] = (), allowed_hosts: Iterable[str] = (),
                 env: bool = True) -> SecurityPolicy:
        """The policy for serving on ``host``; ``token`` defaults to ``$LLMMIXER_TOKEN``.

        Raises:
            BindRefused: non-loopback ``host`` and no token.
        """
        return cls(HTTPPolicy.for_bind(host, token=token, allowed_hosts=allowed_hosts, extra_origins=extra_origins,
                                       protected_prefixes=PROTECTED_PREFIXES, env=env), max_body)

    @property
    def host(self) -> str:
        return self.http.host

    @property
    def token(self) -> str | None:
        return self.http.token

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return self.http.allowed_hosts


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


class SecurityMiddleware:
    """Pure ASGI guard in front of the whole app (see the module docstring for the checks and their order)."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.policy.http.refusal(scope, headers, authorised=self._authorised)
        if refusal is not None:
            await send_refusal(refusal, scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and int(declared) > self.policy.max_body:  # digits: checked by the policy
            await too_large_response(self.policy.max_body)(scope, receive, send)
            return
        if self.policy.token and scope["path"] == "/" and "token" in _query(scope):
            await self._set_cookie(scope, receive, send)
            return
        if scope["method"] in BODYLESS_METHODS:
            await self.app(scope, receive, send)  # the fast path: nothing wrapped, nothing per chunk
            return
        await self._with_body_cap(scope, receive, send)

    def _authorised(self, headers: Headers) -> bool:
        if self.policy.http.bearer_ok(headers):
            return True
        token = self.policy.token or ""
        # The gateway's clients send the token as their vendor's API key (orchestrator/gateway/wire.py).
        for name in ("x-api-key", "x-goog-api-key"):
            supplied = headers.get(name)
            if supplied and token and hmac.compare_digest(supplied.encode(), token.encode()):
                return True
        cookie_header = headers.get("cookie")
        if cookie_header:
            jar: SimpleCookie = SimpleCookie()
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

    async def _with_body_cap(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            await too_large_response(cap)(scope, receive, send)
