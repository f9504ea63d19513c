"""Events in a Redis Stream (``redis://host:port/db``, optional ``?stream=NAME&maxlen=N``), shared by every
``llmmixer serve`` replica pointed at the same Redis, so a client may reconnect to any of them.

Storage model: one stream (default ``llmmixer:events``); each entry is one event: field ``r`` holds its run id (for
filtering without decoding) and ``e`` the event's JSON without its id. The entry id Redis assigns (``"1732500000123-0"``) is the event id: strictly
increasing, identical for every reader. ``XADD ... MAXLEN ~ N`` bounds retention (Redis trims whole nodes, so a
few more than N may stay). ``wait_after`` is ``XREAD BLOCK``, which wakes on an append from any process.

Gap detection reads ``XINFO STREAM`` in :meth:`RedisStore.first_id`: when nothing was ever trimmed
(``entries-added == length``) no reader can have missed anything; once something was, an id older than the oldest
retained is a gap (conservatively: the ids of trimmed entries are gone, so the one right before the oldest counts
too), as is any id below ``max-deleted-entry-id``.

Group commit: :meth:`RedisStore.append_many` sends a batch as one Lua script call (one round trip, applied
atomically). A write whose reply is lost (Redis stopped after applying it) is retried with the same
:class:`~.base.WriteToken`; the script keeps the last write sequence number each writer stored (``<stream>:w:<id>``,
expiring a day after its last write) and skips what it already has, so a retry never stores an event twice.
Point the store at a Redis that persists (AOF) if events must survive a Redis restart.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import anyio

from ...servers.core.errors import ConnectionError_, InvalidInputError, TimeoutError_, UnavailableError
from ...servers.core.events import Event
from ...servers.core.redact import redact_url
from .base import DEFAULT_MAXLEN, READ_LIMIT, StoreBase, StoreHealth, WriteToken, id_key
from .runlog import RedisRunLog

__all__ = ["RedisStore", "DEFAULT_STREAM"]

DEFAULT_STREAM = "llmmixer:events"
_ENTRY_ID = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})$")
_U64 = 2**64 - 1
_MIN_PAGE = 100  # entries per XRANGE when filtering by run
BLOCK_SLICE_S = 2.0
WRITER_KEY_TTL_S = 86_400
CLIENT_RETRIES = 2  # redis-py's own retries on a dropped connection; the writer's spool does the long wait

# KEYS[1] the stream, KEYS[2] (optional) this writer's last stored sequence number.
# ARGV: maxlen (0: none), first sequence number, ttl, then (run, payload) pairs.
_APPEND_LUA = """
local last = 0
if KEYS[2] then last = tonumber(redis.call('GET', KEYS[2]) or '0') end
local maxlen = tonumber(ARGV[1])
local first = tonumber(ARGV[2])
local ids = {}
local n = (#ARGV - 3) / 2
for i = 1, n do
  if KEYS[2] and first + i - 1 <= last then
    ids[i] = false
  elseif maxlen > 0 then
    ids[i] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'r', ARGV[2 * i + 2], 'e', ARGV[2 * i + 3])
  else
    ids[i] = redis.call('XADD', KEYS[1], '*', 'r', ARGV[2 * i + 2], 'e', ARGV[2 * i + 3])
  end
end
if KEYS[2] and first + n - 1 > last then redis.call('SET', KEYS[2], first + n - 1, 'EX', tonumber(ARGV[3])) end
return ids
"""


@contextlib.contextmanager
def _redis_errors(url: str) -> Iterator[None]:
    """Map redis-py's exceptions to the shared tree at this one boundary."""
    import redis.exceptions as rx

    try:
        yield
    except rx.TimeoutError as exc:
        raise TimeoutError_(f"event store {url}: {exc}") from exc
    except rx.ConnectionError as exc:
        raise ConnectionError_(f"event store {url} unreachable: {exc}") from exc
    except rx.RedisError as exc:
        raise UnavailableError(f"event store {url}: {exc}") from exc


def _entry_to_event(entry_id: str, fields: dict[str, str]) -> Event:
    return Event.from_json(fields["e"]).with_id(entry_id)


class RedisStore(RedisRunLog, StoreBase):
    def __init__(self, redis_url: str, *, stream: str = DEFAULT_STREAM, maxlen: int | None = DEFAULT_MAXLEN,
                 url: str | None = None) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.maxlen = maxlen
        self.url = url or redact_url(redis_url)  # what is shown: never the password
        self._client: Any = None
        self._max_deleted = (0, 0)
        self._trimmed = False  # learnt from XINFO STREAM in first_id()
        self._append: Any = None
        self.health = StoreHealth()

    async def open(self) -> None:
        if self._client is not None:
            return
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        client = aioredis.Redis.from_url(self.redis_url, decode_responses=True,
                                         retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2),
                                                     CLIENT_RETRIES))
        try:
            with _redis_errors(self.url):
                await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        self._append = client.register_script(_APPEND_LUA)

    async def reconnect(self) -> None:
        """Drop every pooled connection (stale after a Redis restart); the next command connects afresh."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise UnavailableError(f"event store {self.url} is not open")
        return self._client

    async def append_many(self, events: Sequence[Event], token: WriteToken | None = None) -> list[Event | None]:
        if not events:
            return []
        client = self.client
        if token is None and len(events) == 1:  # one event, no retry to guard against: a plain XADD
            event = events[0]
            payload = json.dumps({k: v for k, v in event.to_dict().items() if k != "id"}, ensure_ascii=False,
                                 separators=(",", ":"))
            with _redis_errors(self.url):
                entry_id = await client.xadd(self.stream, {"r": event.run, "e": payload}, maxlen=self.maxlen,
                                             approximate=True)
            return [event.with_id(entry_id)]
        args: list[Any] = [self.maxlen or 0, token.first if token else 0, WRITER_KEY_TTL_S]
        for event in events:
            args += [event.run, json.dumps({k: v for k, v in event.to_dict().items() if k != "id"},
                                           ensure_ascii=False, separators=(",", ":"))]
        keys = [self.stream] + ([f"{self.stream}:w:{token.writer}"] if token else [])
        with _redis_errors(self.url):
            ids = await self._append(keys=keys, args=args, client=client)
        return [None if not entry_id else event.with_id(entry_id) for event, entry_id in zip(events, ids)]

    async def read_after(self, after: str | None, limit: int = READ_LIMIT, run: str | None = None) -> list[Event]:
        start = f"({after}" if after is not None else "-"
        with _redis_errors(self.url):
            if run is None:
                entries = await self.client.xrange(self.stream, start, "+", count=limit)
                return [_entry_to_event(entry_id, fields) for entry_id, fields in entries]
            # Streams cannot filter server-side: page through, keeping this run's entries (by the "r" field, so
            # other runs' events are never decoded).
            found: list[Event] = []
            page = max(limit, _MIN_PAGE)
            while len(found) < limit:
                entries = await self.client.xrange(self.stream, start, "+", count=page)
                for entry_id, fields in entries:
                    if fields.get("r") == run:
                        found.append(_entry_to_event(entry_id, fields))
                        if len(found) >= limit:
                            break
                if len(entries) < page:
                    break
                start = f"({entries[-1][0]}"
            return found

    async def first_id(self) -> str | None:
        import redis.exceptions as rx

        try:
            with _redis_errors(self.url):
                info = await self.client.xinfo_stream(self.stream)
        except UnavailableError as exc:
            if isinstance(exc.__cause__, rx.ResponseError) and "no such key" in str(exc.__cause__).lower():
                return None
            raise
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None:
            self._max_deleted = max(self._max_deleted, id_key(deleted))
        added, length = info.get("entries-added"), info.get("length")
        if added is None or length is None or int(added) > int(length):
            self._trimmed = True
        first = info.get("first-entry")
        return first[0] if first else None

    async def last_id(self) -> str | None:
        with _redis_errors(self.url):
            entries = await self.client.xrevrange(self.stream, "+", "-", count=1)
        return entries[0][0] if entries else None

    async def wait_after(self, after: str | None, timeout: float) -> bool:
        # XREAD BLOCK in slices shorter than redis-py's socket timeout (5 s by default), which would otherwise
        # turn a long quiet wait into a read timeout.
        deadline = anyio.current_time() + max(timeout, 0.0)
        with _redis_errors(self.url):
            while True:
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    return bool(await self.client.xread({self.stream: after or "0-0"}, count=1))
                block_ms = max(1, int(min(remaining, BLOCK_SLICE_S) * 1000))
                if await self.client.xread({self.stream: after or "0-0"}, count=1, block=block_ms):
                    return True

    def parse_id(self, raw: str) -> str:
        text = raw.strip() if isinstance(raw, str) else ""
        match = _ENTRY_ID.match(text)
        if not match or int(match.group(1)) > _U64 or int(match.group(2)) > _U64:
            raise InvalidInputError(f"malformed event id {str(raw)[:40]!r}: expected a stream entry id such as "
                                    "'1732500000123-0'")
        return text

    def is_evicted(self, after: str, first: str | None) -> bool:
        after_key = id_key(after)
        if after_key < self._max_deleted:
            return True
        # MAXLEN trims are not always recorded in max-deleted-entry-id (Redis 7.0), and the trimmed ids are gone:
        # once anything was trimmed, an id older than the oldest retained is reported as a gap, conservatively.
        return self._trimmed and first is not None and after_key < id_key(first)
