"""Event stores behind one protocol (:class:`EventStore`), chosen by URL with :func:`open_store`.

==================================  ==========================================================================
``None``, ``memory``                a bounded ring in this process (10,000 events, 64 MiB);
                                    ``memory://?maxlen=N&max_bytes=M``
``sqlite:///path``                  a SQLite file in WAL mode, survives restarts; capped at 256 MiB of events by
                                    default, oldest first; ``?maxlen=N&max_bytes=M`` (M: bytes, or 64m, 1g);
                                    ``?synchronous=normal`` trades durability for commit speed (default full)
``redis://host:port/db``            a Redis Stream shared by replicas; ``?stream=NAME&maxlen=N`` (default
                                    ``llmmixer:events``, 10,000); ``rediss://`` for TLS
==================================  ==========================================================================

:func:`open_store` only parses: it connects nothing, so a bad URL fails before anything starts. Open the store
with ``await store.open()`` or ``async with open_store(url) as store:``. The orchestrator writes through a
:class:`StoreWriter` (spool, retries, group commit, ``store.gap`` markers); see :mod:`.writer`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ...servers.core.errors import InvalidInputError
from ...servers.core.redact import redact_url
from .base import DEFAULT_MAXLEN, DEFAULT_MEMORY_BYTES, EventStore, StoreHealth, id_key, parse_maxlen, parse_size
from .memory import MemoryStore
from .redis import DEFAULT_STREAM, RedisStore
from .sqlite import DEFAULT_MAX_BYTES, SYNCHRONOUS, SqliteStore
from .writer import StoreWriter

__all__ = ["EventStore", "MemoryStore", "SqliteStore", "RedisStore", "StoreWriter", "StoreHealth", "open_store",
           "id_key", "DEFAULT_MAXLEN"]

_EXAMPLES = "memory, memory://?maxlen=N, sqlite:///path/to/events.db or redis://host:6379/0"


def _query(url: str, query: str, allowed: set[str]) -> dict[str, str]:
    params = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidInputError(f"bad event store URL {url!r}: unknown option(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(allowed)) or 'none'}")
    return {key: values[-1] for key, values in params.items()}


def open_store(url: str | None) -> EventStore:
    """The store for ``url`` (see the module docstring), not yet opened.

    Raises:
        InvalidInputError: an unknown scheme or a malformed URL, with the forms that work.
    """
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryStore()
    url = url.strip()
    return _open(url, redact_url(url))


def _open(url: str, shown: str) -> EventStore:
    """``url`` is only ever connected to; ``shown`` (its password hidden) is what errors and ``store.url`` say."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        location, _, query = rest.partition("?")
        if location:
            raise InvalidInputError(f"bad event store URL {shown!r}: a memory store has no location; "
                                    "use memory or memory://?maxlen=N")
        options = _query(shown, query, {"maxlen", "max_bytes"})
        return MemoryStore(parse_maxlen(options.get("maxlen"), shown, DEFAULT_MAXLEN) or DEFAULT_MAXLEN, url=shown,
                           max_bytes=parse_size(options.get("max_bytes"), shown, DEFAULT_MEMORY_BYTES)
                           or DEFAULT_MEMORY_BYTES)
    if scheme == "sqlite":
        if not rest.startswith("/"):
            raise InvalidInputError(f"bad event store URL {shown!r}: write sqlite:///relative/path.db or "
                                    "sqlite:////absolute/path.db")
        path, _, query = rest[1:].partition("?")
        if not path:
            raise InvalidInputError(f"bad event store URL {shown!r}: the database path is missing "
                                    "(sqlite:///path/to/events.db)")
        options = _query(shown, query, {"maxlen", "max_bytes", "synchronous"})
        synchronous = options.get("synchronous", SYNCHRONOUS).upper()
        if synchronous not in ("FULL", "NORMAL"):
            raise InvalidInputError(f"bad event store URL {shown!r}: synchronous must be full or normal")
        return SqliteStore(path, maxlen=parse_maxlen(options.get("maxlen"), shown, None), url=shown,
                           max_bytes=parse_size(options.get("max_bytes"), shown, DEFAULT_MAX_BYTES),
                           synchronous=synchronous)
    if scheme in ("redis", "rediss"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise InvalidInputError(f"bad event store URL {shown!r}: the Redis host is missing (redis://host:6379/0)")
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise InvalidInputError(f"bad event store URL {shown!r}: the port is not a number") from None
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise InvalidInputError(f"bad event store URL {shown!r}: the database must be a number, got {db!r}")
        params = parse_qs(parts.query, keep_blank_values=True)
        ours = {key: values[-1] for key, values in params.items() if key in ("stream", "maxlen")}
        theirs = {key: values for key, values in params.items() if key not in ours}
        stream = ours.get("stream", DEFAULT_STREAM)
        if not stream:
            raise InvalidInputError(f"bad event store URL {shown!r}: stream name is empty")
        maxlen = parse_maxlen(ours.get("maxlen"), shown, DEFAULT_MAXLEN)
        redis_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs, doseq=True), ""))
        return RedisStore(redis_url, stream=stream, maxlen=maxlen, url=shown)
    raise InvalidInputError(f"unknown event store URL {shown!r}: use {_EXAMPLES}")
