"""What the web tests share: store URLs (memory, sqlite, a real Redis), the web app served on a real port
(in this process or as ``python -m llmmixer.orchestrator.web``), and an SSE reader built on httpx2's EventSource.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from llmmixer.orchestrator.stores import RedisStore, open_store
from llmmixer.orchestrator.stores.base import EventStore
from llmmixer.orchestrator.web.__main__ import NoRuns
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.servers.core.events import EVENT_TYPES, Event

REDIS = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


REDIS_MARKS = [pytest.mark.redis,
               pytest.mark.skipif(not redis_available(), reason="needs redis-server on 127.0.0.1:6379")]
STORE_KINDS = ["memory", "sqlite", pytest.param("redis", marks=REDIS_MARKS)]


def store_url(kind: str, tmp_path: Path, maxlen: int | None = None) -> str:
    if kind == "memory":
        return f"memory://?maxlen={maxlen}" if maxlen else "memory"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/events-{uuid.uuid4().hex[:8]}.db" + (f"?maxlen={maxlen}" if maxlen else "")
    return f"{REDIS}?stream=llmmixer-test:{uuid.uuid4().hex}" + (f"&maxlen={maxlen}" if maxlen else "")


def origin_id(store: EventStore) -> str:
    """The id before every id the store gives: resuming from it replays everything."""
    return "0-0" if isinstance(store, RedisStore) else "0"


@contextlib.asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[EventStore]:
    store = open_store(url)
    try:
        async with store:
            yield store
    finally:
        if isinstance(store, RedisStore):
            import redis

            redis.Redis.from_url(REDIS).delete(store.stream)


@contextlib.asynccontextmanager
async def web(store: EventStore, runs: Any = None, **options: Any) -> AsyncIterator[tuple[str, Any]]:
    """The web app over ``store`` on a real uvicorn port in this process; yields ``(base_url, app)``."""
    app = create_app(runs if runs is not None else NoRuns(), store, **options)
    async with running(app) as url:
        yield url, app


def ev(i: int, run: str = "run-a", type_: str = "delta", **data: Any) -> Event:
    return Event(run=run, source="claude", type=type_, data={"i": i, "text": f"tok{i} ", **data})  # type: ignore[arg-type]


async def all_events(store: EventStore, run: str | None = None) -> list[Event]:
    events: list[Event] = []
    after = None
    while batch := await store.read_after(after, 1000, run=run):
        events.extend(batch)
        after = batch[-1].id
    return events


@dataclass
class Stream:
    """What one ``/events`` connection delivered."""

    events: list[dict[str, Any]] = field(default_factory=list)  # event JSON, in order
    ids: list[str] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # "gap" / "event", as they came
    ended: str = ""  # "count", "eof" or "cut"


async def read_stream(client: httpx2.AsyncClient, url: str, *, count: int, last_event_id: str | None = None,
                      run: str | None = None, query_id: str | None = None, until_type: str | None = None) -> Stream:
    """Read until ``count`` events (or one of type ``until_type``) arrived, the server ended the stream, or it
    was cut."""
    params: dict[str, str] = {}
    if run is not None:
        params["run"] = run
    if query_id is not None:
        params["last_event_id"] = query_id
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    result = Stream()
    try:
        async with client.stream("GET", f"{url}/events", params=params, headers=headers) as response:
            assert response.status_code == 200, (await response.aread()).decode()
            async for sse in httpx2.EventSource(response):
                if sse.event == "gap":
                    result.gaps.append(json.loads(sse.data))
                    result.order.append("gap")
                elif sse.event in EVENT_TYPES:
                    payload = json.loads(sse.data)
                    assert payload["id"] == sse.id and payload["type"] == sse.event
                    result.events.append(payload)
                    result.ids.append(sse.id)
                    result.order.append("event")
                    if len(result.events) >= count or sse.event == until_type:
                        result.ended = "count"
                        return result
        result.ended = "eof"
    except httpx2.TransportError:
        result.ended = "cut"
    return result


class ServerProcess:
    """``python -m llmmixer.orchestrator.web`` in a subprocess: a second replica, or a server to restart."""

    def __init__(self, store: str, *extra: str) -> None:
        # stderr to a file: a pipe nobody reads would block the server once it filled up.
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmmixer.orchestrator.web", "--store", store, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = ""

    async def started(self) -> str:
        assert self.proc.stdout is not None
        line = await anyio.to_thread.run_sync(self.proc.stdout.readline)
        if not line.startswith("serving "):
            self.stop()
            raise RuntimeError(f"web server did not start: {line!r} {self.stderr()}")
        self.url = line.split()[1]
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()


@contextlib.asynccontextmanager
async def server_process(store: str, *extra: str) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(store, *extra)
    try:
        with anyio.fail_after(30):
            await server.started()
        yield server
    finally:
        server.stop()
