"""The run log of each store: run records (prompt, options, status, result) beside the events.

See :mod:`llmmixer.orchestrator.history` for what a record holds. Each store keeps its records the way it keeps
its events:

- memory: an ordered dict, bounded (``MAX_MEMORY_RUNS`` records; the oldest go first), gone with the process;
- sqlite: the ``runs`` table (migration ``m002_runs``), not trimmed with the events, so history survives both a
  restart and the events' ``maxlen``;
- redis: a hash of records and a sorted set giving their order (``<stream>:runs``, ``<stream>:runs:order``),
  bounded to ``MAX_REDIS_RUNS`` records and shared by every replica.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from ..history import MAX_HISTORY_RUNS, matches

__all__ = ["MemoryRunLog", "SqliteRunLog", "RedisRunLog", "m002_runs", "MAX_MEMORY_RUNS", "MAX_REDIS_RUNS"]

MAX_MEMORY_RUNS = 1000
MAX_REDIS_RUNS = 10_000


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class MemoryRunLog:
    """Run records in this process, bounded."""

    max_runs: int = MAX_MEMORY_RUNS

    @property
    def _records(self) -> OrderedDict[str, dict[str, Any]]:
        records = self.__dict__.get("_run_records")
        if records is None:
            records = self.__dict__["_run_records"] = OrderedDict()
        return records

    async def put_run(self, record: dict[str, Any]) -> None:
        records = self._records
        run_id = record["run_id"]
        if run_id not in records:
            while len(records) >= self.max_runs:
                records.popitem(last=False)
        records[run_id] = json.loads(_dumps(record))  # a copy, as a database would keep

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        record = self._records.get(run_id)
        return None if record is None else dict(record)

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        found = [dict(r) for r in reversed(self._records.values()) if matches(r, query, conversation_id)]
        return found[offset:offset + limit]

    async def conversation_runs(self, conversation_id: str, limit: int = MAX_HISTORY_RUNS) -> list[dict[str, Any]]:
        found = [dict(r) for r in self._records.values() if r.get("conversation_id") == conversation_id]
        return found[-limit:]

    async def latest_conversation(self) -> str | None:
        for record in reversed(self._records.values()):
            if record.get("conversation_id"):
                return record["conversation_id"]
        return None


def m002_runs(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        conversation_id TEXT,
        status TEXT NOT NULL,
        search TEXT NOT NULL,
        record TEXT NOT NULL)""")
    db.execute("CREATE INDEX runs_conversation ON runs (conversation_id, seq)")


def _search_text(record: dict[str, Any]) -> str:
    return "\n".join(record.get(key) or "" for key in ("prompt", "system", "answer", "command")).casefold()


def _like(query: str) -> str:
    escaped = query.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqliteRunLog:
    """Run records in the ``runs`` table; needs the store's ``_call(fn)`` (one serialised connection)."""

    async def _call(self, fn: Any, *, write: bool = False) -> Any:  # pragma: no cover - provided by SqliteStore
        raise NotImplementedError

    async def put_run(self, record: dict[str, Any]) -> None:
        row = (record["run_id"], record.get("created"), record.get("updated"), record.get("conversation_id"),
               record.get("status", "running"), _search_text(record), _dumps(record))

        def upsert(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO runs (run_id, created, updated, conversation_id, status, search, record) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET updated = excluded.updated, "
                       "conversation_id = excluded.conversation_id, status = excluded.status, "
                       "search = excluded.search, record = excluded.record", row)

        await self._call(upsert, write=True)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = await self._call(lambda db: db.execute("SELECT record FROM runs WHERE run_id = ?",
                                                     (run_id,)).fetchone())
        return None if row is None else json.loads(row[0])

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if query:
            where.append("search LIKE ? ESCAPE '\\'")
            params.append(_like(query))
        sql = "SELECT record FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
        rows = await self._call(lambda db: db.execute(sql, (*params, limit, offset)).fetchall())
        return [json.loads(row[0]) for row in rows]

    async def conversation_runs(self, conversation_id: str, limit: int = MAX_HISTORY_RUNS) -> list[dict[str, Any]]:
        rows = await self._call(lambda db: db.execute(
            "SELECT record FROM runs WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?",
            (conversation_id, limit)).fetchall())
        return [json.loads(row[0]) for row in reversed(rows)]

    async def latest_conversation(self) -> str | None:
        row = await self._call(lambda db: db.execute(
            "SELECT conversation_id FROM runs WHERE conversation_id IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchone())
        return None if row is None else row[0]


# KEYS: records hash, order zset, sequence counter; ARGV: run id, record JSON, max records.
_PUT_RUN_LUA = """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  local dropped = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #dropped, 2 do redis.call('HDEL', KEYS[1], dropped[i]) end
end
return 1
"""


class RedisRunLog:
    """Run records in a Redis hash, ordered by a sorted set; needs the store's ``client``, ``stream``, ``url``."""

    stream: str
    url: str
    max_runs: int = MAX_REDIS_RUNS

    @property
    def client(self) -> Any:  # pragma: no cover - provided by RedisStore
        raise NotImplementedError

    def _keys(self) -> tuple[str, str, str]:
        return f"{self.stream}:runs", f"{self.stream}:runs:order", f"{self.stream}:runs:seq"

    async def put_run(self, record: dict[str, Any]) -> None:
        """One round trip (a script, applied atomically): a run's record is written on the run's own path twice."""
        from .redis import _redis_errors

        script = self.__dict__.get("_put_run_script")
        if script is None:
            script = self.__dict__["_put_run_script"] = self.client.register_script(_PUT_RUN_LUA)
        with _redis_errors(self.url):
            await script(keys=list(self._keys()), args=[record["run_id"], _dumps(record), self.max_runs],
                         client=self.client)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        from .redis import _redis_errors

        with _redis_errors(self.url):
            raw = await self.client.hget(self._keys()[0], run_id)
        return None if raw is None else json.loads(raw)

    async def _newest_first(self, page: int = 200) -> AsyncIterator[dict[str, Any]]:
        from .redis import _redis_errors

        records, order, _ = self._keys()
        start = 0
        while True:
            with _redis_errors(self.url):
                ids = await self.client.zrevrange(order, start, start + page - 1)
                raws = await self.client.hmget(records, ids) if ids else []
            for raw in raws:
                if raw is not None:
                    yield json.loads(raw)
            if len(ids) < page:
                return
            start += page

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        skipped = 0
        async for record in self._newest_first():
            if not matches(record, query, conversation_id):
                continue
            if skipped < offset:
                skipped += 1
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    async def conversation_runs(self, conversation_id: str, limit: int = MAX_HISTORY_RUNS) -> list[dict[str, Any]]:
        found = await self.list_runs(limit=limit, conversation_id=conversation_id)
        return list(reversed(found))

    async def latest_conversation(self) -> str | None:
        async for record in self._newest_first():
            if record.get("conversation_id"):
                return record["conversation_id"]
        return None
