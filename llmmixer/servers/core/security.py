"""The HTTP security rules every LLMMixer face shares: the web app (``llmmixer serve``) and each MCP server's
Streamable HTTP transport. One place for each rule; both faces build their front door from it.

- **Bind.** Loopback unless told otherwise; a non-loopback bind refuses to start without ``$LLMMIXER_TOKEN``
  (:func:`check_bind`).
- **Host** (421 when refused). Loopback names are always allowed. A wildcard bind (``0.0.0.0``, ``::``) also
  allows the machine's own addresses and names (every interface address, the hostname, the FQDN); a bind to one
  address allows that address. ``--allowed-host`` / ``$LLMMIXER_ALLOWED_HOSTS`` (comma-separated) add more, e.g.
  the name a reverse proxy forwards. A DNS-rebinding page (``evil.example`` resolving to us) is refused.
- **Origin** (403). A request whose ``Origin`` is present must come from the server's own origin (the request's
  ``Host``, already checked) or an extra origin the operator listed. Browsers send ``Origin`` on cross-site
  fetches, ``EventSource`` and form posts.
- **Cross-site writes** (403). A ``POST``/``PUT``/``PATCH`` needs a JSON content type or an ``X-LLMMixer``
  header. A cross-site form or a ``text/plain`` fetch is a "simple" request a browser sends without asking, even
  with no ``Origin`` in some cases; neither of these two can be sent cross-site without a CORS preflight, which
  we never grant.
- **Token** (401). When a token is set, protected paths need ``Authorization: Bearer <token>``, compared in
  constant time.

Every refusal is JSON in the shared error shape (``{"error": {"kind", "message", "status", ...}}``).
:class:`HTTPGuard` is the pure ASGI middleware applying these checks: it inspects the request head once and then
hands the untouched ``receive``/``send`` to the app, so a streamed response pays nothing per chunk.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from .errors import AuthError, InvalidInputError, LLMMixerError, PermissionError_

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.datastructures import Headers
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "TOKEN_ENV",
    "ALLOWED_HOSTS_ENV",
    "CSRF_HEADER",
    "LOOPBACK_NAMES",
    "BindRefused",
    "Refusal",
    "HTTPPolicy",
    "HTTPGuard",
    "is_loopback",
    "is_wildcard",
    "check_bind",
    "host_name",
    "machine_names",
    "allowed_host_names",
    "bearer_matches",
    "send_refusal",
    "transport_security_settings",
]

TOKEN_ENV = "LLMMIXER_TOKEN"
ALLOWED_HOSTS_ENV = "LLMMIXER_ALLOWED_HOSTS"
CSRF_HEADER = "x-llmmixer"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BindRefused(RuntimeError):
    """A non-loopback bind without ``LLMMIXER_TOKEN``: the server refuses to start."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """``0.0.0.0`` or ``::``: every interface of the machine."""
    return host.strip("[]") in WILDCARD_BINDS


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token.

    Raises:
        BindRefused: ``host`` is not loopback and ``token`` is empty; the message names the variable to set.
    """
    if not is_loopback(host) and not token:
        raise BindRefused(f"refusing to bind {host}: a non-loopback bind requires ${TOKEN_ENV} "
                          "(every request must then carry it as a bearer token)")


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header: ``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"``,
    ``"Example.COM."`` -> ``"example.com"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _normalise(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.split("%", 1)[0]  # fe80::1%eth0: the zone never appears in a Host header


def machine_names() -> frozenset[str]:
    """Every address of every interface of this machine, plus its hostname, FQDN and what the hostname resolves to."""
    names: set[str] = set(LOOPBACK_NAMES)
    try:
        import psutil

        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(_normalise(address.address))
    except Exception:  # noqa: BLE001 - without interface addresses the names below still work
        pass
    for name in {socket.gethostname(), socket.getfqdn()}:
        if not name:
            continue
        names.add(_normalise(name))
        try:
            for info in socket.getaddrinfo(name, None):
                names.add(_normalise(str(info[4][0])))
        except OSError:
            pass
    return frozenset(n for n in names if n)


def _split(raw: str | None) -> list[str]:
    return [part for part in (raw or "").replace(" ", ",").split(",") if part.strip()]


def allowed_host_names(bind_host: str, extra: Iterable[str] = (), *, env: bool = True) -> frozenset[str]:
    """The names a ``Host`` header may carry for a server bound to ``bind_host`` (see the module docstring)."""
    names = set(LOOPBACK_NAMES)
    if is_wildcard(bind_host):
        names |= machine_names()
    elif not is_loopback(bind_host):
        names.add(_normalise(bind_host))
    listed = list(extra) + (_split(os.environ.get(ALLOWED_HOSTS_ENV)) if env else [])
    names |= {host_name(item) for item in listed if item.strip()}
    return frozenset(names)


def bearer_matches(authorization: str | bytes, token: str) -> bool:
    supplied = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    return hmac.compare_digest(supplied, f"Bearer {token}".encode())


class Refusal(NamedTuple):
    error: LLMMixerError
    status: int
    headers: dict[str, str] | None = None


async def send_refusal(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.responses import JSONResponse

    error = refusal.error
    if error.status is None:
        error.status = refusal.status
    await JSONResponse(error.to_dict(), status_code=refusal.status, headers=refusal.headers)(scope, receive, send)


@dataclass(frozen=True, slots=True)
class HTTPPolicy:
    """What a front door enforces. Build it with :meth:`for_bind` so the bind rule is applied once."""

    host: str = "127.0.0.1"
    token: str | None = None
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    # Browser origins allowed besides the server's own (e.g. a reverse proxy's public https URL).
    extra_origins: frozenset[str] = field(default_factory=frozenset)
    # Paths that need the token when one is set; None: every path.
    protected_prefixes: tuple[str, ...] | None = None
    # Writes need a JSON content type or the X-LLMMixer header (off for faces that check it themselves).
    guard_writes: bool = True

    @classmethod
    def for_bind(cls, host: str, *, token: str | None = None, allowed_hosts: Iterable[str] = (),
                 extra_origins: Iterable[str] = (), protected_prefixes: tuple[str, ...] | None = None,
                 guard_writes: bool = True, env: bool = True) -> HTTPPolicy:
        """The policy for serving on ``host``; ``token`` defaults to ``$LLMMIXER_TOKEN``, and
        ``$LLMMIXER_ALLOWED_HOSTS`` adds to ``allowed_hosts`` (both only when ``env``).

        Raises:
            BindRefused: non-loopback ``host`` and no token.
        """
        if token is None and env:
            token = os.environ.get(TOKEN_ENV) or None
        check_bind(host, token)
        return cls(host=host, token=token, allowed_hosts=allowed_host_names(host, allowed_hosts, env=env),
                   extra_origins=frozenset(o.strip().rstrip("/").lower() for o in extra_origins if o.strip()),
                   protected_prefixes=protected_prefixes, guard_writes=guard_writes)

    def protects(self, path: str) -> bool:
        return self.token is not None and (self.protected_prefixes is None or path.startswith(self.protected_prefixes))

    def host_allowed(self, host_header: str) -> bool:
        return bool(host_header) and host_name(host_header) in self.allowed_hosts

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.extra_origins:
            return True
        parts = urlsplit(origin)
        return (parts.scheme in ("http", "https") and bool(parts.netloc)
                and parts.netloc == host_header.strip().lower())

    def refusal(self, scope: Scope, headers: Headers, *,
                authorised: Callable[[Headers], bool] | None = None) -> Refusal | None:
        """The first rule the request breaks (in the module docstring's order), or None.

        ``authorised`` replaces the bearer check (the web app also takes its cookie).
        """
        host_header = headers.get("host", "")
        if not self.host_allowed(host_header):
            return Refusal(PermissionError_(
                f"host {host_header!r} refused: not a name of this server (add it with --allowed-host "
                f"or ${ALLOWED_HOSTS_ENV})"), 421)
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host_header):
            return Refusal(PermissionError_(
                f"origin {origin!r} refused: only the server's own origin may call it"), 403)
        if self.guard_writes and scope.get("method") in WRITE_METHODS and not _json_or_marked(headers):
            return Refusal(PermissionError_(
                "a request that changes state needs 'Content-Type: application/json' or an 'X-LLMMixer: 1' "
                "header (so a cross-site form cannot send it)"), 403)
        if self.protects(scope["path"]):
            ok = authorised(headers) if authorised is not None else self.bearer_ok(headers)
            if not ok:
                return Refusal(AuthError(f"missing or wrong token: send 'Authorization: Bearer <${TOKEN_ENV}>'"),
                               401, {"WWW-Authenticate": "Bearer"})
        content_length = headers.get("content-length")
        if content_length is not None and not content_length.strip().isdigit():
            return Refusal(InvalidInputError(f"malformed Content-Length {content_length[:40]!r}"), 400)
        return None

    def bearer_ok(self, headers: Headers) -> bool:
        supplied = headers.get("authorization")
        return bool(supplied) and self.token is not None and bearer_matches(supplied or "", self.token)


def _json_or_marked(headers: Headers) -> bool:
    if CSRF_HEADER in headers:
        return True
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class HTTPGuard:
    """Pure ASGI front door applying an :class:`HTTPPolicy`; lifespan and websocket scopes pass through."""

    def __init__(self, app: ASGIApp, policy: HTTPPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            from starlette.datastructures import Headers

            refusal = self.policy.refusal(scope, Headers(scope=scope))
            if refusal is not None:
                await send_refusal(refusal, scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_patterns(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in sorted(names):
        shown = f"[{name}]" if ":" in name else name
        out += [shown, f"{shown}:*"]
    return out


def transport_security_settings(policy: HTTPPolicy) -> TransportSecuritySettings:
    """The MCP SDK's own Host/Origin guard, given the same lists (the SDK turns its guard off by itself for a
    wildcard bind, so it is always passed explicitly)."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = _host_patterns(policy.allowed_hosts)
    origins = [f"{scheme}://{pattern}" for pattern in hosts for scheme in ("http", "https")]
    origins += sorted(policy.extra_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)
