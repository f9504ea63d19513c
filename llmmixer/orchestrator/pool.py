"""One long-lived MCP session per configured server: opened lazily, health-checked, restarted when it dies.

Each session is owned by its own task (an MCP ``Client`` must be entered and left in one task), which holds the
connection open until the pool closes. A call that was in flight when the server process died becomes a
``connection`` error; the next call starts a new process, after a backoff that grows with consecutive failures.
Each server has its own concurrency limit so one busy vendor cannot starve the others.

Admission control: each server also has a bounded queue (``maxQueue``, default
:data:`~.config.DEFAULT_MAX_QUEUE`) of calls waiting for one of those slots. A run is admitted when it starts
(:meth:`ServerPool.admit`), which holds one place per server it uses until that leg gets its slot or the run
ends; each call is given its run's :class:`Admission` (``pool.call(..., admission=...)``), and gives back that
run's place on its server the moment it gets its slot. Beyond ``maxConcurrency + maxQueue`` places the run is refused at once with ``rate_limit`` and a
``retry_after_s`` (the HTTP API answers 429), instead of queueing without limit. A call that has to wait
reports ``queued`` through ``on_state`` and ``running`` once it has its slot.

Timeouts clean up: a call past ``call_timeout_s`` (or, for a model's ``generate``, ``idle_timeout_s`` without a
streamed delta) is cancelled on the server, which closes its upstream, and fails with ``timeout``. The server must
then answer within :data:`CANCEL_ANSWER_S`, or its session is dropped and its process ended, so no timed-out
server is left running beside its replacement.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import anyio
import anyio.abc

from ..servers.core.errors import (ConnectionError_, ConnectTimeoutError, LLMMixerError, RateLimitError,
                                   UnavailableError)
from .statuses import ServerState
from .config import Config, ServerSpec, manifest_for

__all__ = ["ServerPool", "ServerStatus", "ProgressCallback", "Admission", "CallState"]

log = logging.getLogger("llmmixer.pool")

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
CallState = Literal["queued", "running"]
MAX_RETRY_AFTER_S = 60.0
CONNECT_TIMEOUT_S = 30.0
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 10.0
CANCEL_ANSWER_S = 5.0  # how long a server whose call timed out has to answer before it is restarted


class _Deadline:
    """A call's two limits in one cancel scope: ``total_s`` from the start, and ``idle_s`` after the last progress
    notification (a silent or dripping vendor), whichever comes first."""

    def __init__(self, total_s: float, idle_s: float | None) -> None:
        now = anyio.current_time()
        self.total_s, self.idle_s = total_s, idle_s or None
        self.end = now + total_s
        self.scope = anyio.CancelScope(deadline=self._next(now))

    def _next(self, now: float) -> float:
        return min(self.end, now + self.idle_s) if self.idle_s else self.end

    def progressed(self) -> None:
        if self.idle_s:
            self.scope.deadline = self._next(anyio.current_time())

    def reason(self) -> str:
        if anyio.current_time() < self.end - 0.001 and self.idle_s:
            return f"no output for {self.idle_s:g} s (idle_timeout_s)"
        return f"no answer within {self.total_s:g} s (call_timeout_s)"


@dataclass
class ServerStatus:
    name: str
    source: str
    transport: str
    status: ServerState
    tools: list[str]
    last_latency_ms: float | None
    calls: int
    failures: int
    last_error: str | None
    active: int = 0  # calls holding a concurrency slot
    queued: int = 0  # admitted runs waiting for one
    max_concurrency: int = 0
    max_queue: int = 0
    info: str | None = None  # the server's own "Status: ..." line from its instructions (e.g. the PTY sandbox)
    # Which key variable the server reads (a name, never a value), whether the orchestrator passes it one (None:
    # not known here, e.g. a server someone else runs), and the vendor endpoint it calls.
    key_var: str | None = None
    key_set: bool | None = None
    endpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key_and_endpoint(spec: ServerSpec) -> dict[str, Any]:
    """What ``llmmixer servers`` shows of a model server's configuration: its key variable's name and whether it is
    set in what the server is launched with, and the endpoint it calls (its base-URL variable, else the vendor's)."""
    manifest = manifest_for(spec.source)
    if manifest is None or not manifest.key_vars:
        return {}
    if spec.url:  # someone else runs it, with keys of its own
        return {"key_var": manifest.key_vars[0], "key_set": None, "endpoint": None}
    env = spec.child_env()
    endpoint = env.get(manifest.base_url_var) if manifest.base_url_var else None
    return {"key_var": manifest.key_vars[0], "key_set": any(env.get(var) for var in manifest.key_vars),
            "endpoint": endpoint or "the vendor's default"}


class _Connection:
    def __init__(self, spec: ServerSpec, task_group: anyio.abc.TaskGroup) -> None:
        self.spec = spec
        self._tg = task_group
        self._client: Any = None
        self._stop = anyio.Event()  # this session's; a replaced session's own event stops its process
        self._lock = anyio.Lock()
        self.limit = anyio.Semaphore(spec.max_concurrency)
        self.active = 0  # calls holding a slot
        self.waiting = 0  # calls waiting for a slot
        self.admitted = 0  # places held by admitted runs whose leg has no slot yet
        self.state: ServerState = "idle"
        self.tools: list[str] = []
        self.info: str | None = None
        self.default_model: str | None = None  # what the adapter's generate uses without a model argument
        self.last_latency_ms: float | None = None
        self.calls = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_failure_at = 0.0
        self.last_error: str | None = None
        self.generation = 0

    def _transport(self) -> Any:
        from mcp import StdioServerParameters

        spec = self.spec
        if spec.inprocess:
            from .inprocess import build_inprocess_server

            return build_inprocess_server(spec)
        if spec.url:
            if not spec.headers:
                return spec.url
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(spec.url, http_client=httpx2.AsyncClient(headers=spec.headers,
                                                                                    timeout=None))
        return StdioServerParameters(command=spec.command or "", args=spec.args, env=spec.child_env(),
                                     encoding_error_handler="replace")

    async def _own(self, ready: anyio.Event, stop: anyio.Event) -> None:
        """Hold one session open until the pool stops, the session is dropped (:meth:`mark_dead`: leaving the
        ``Client`` ends a stdio server's process), or the server goes away."""
        from mcp import Client

        generation = self.generation
        try:
            transport = self._transport()
            async with Client(transport) as client:
                tools = await client.list_tools()
                self._note_tools(tools.tools)
                if self.spec.inprocess:
                    await _loaded(transport)
                self.info = _status_line(getattr(client, "instructions", None))
                self._client, self.state = client, "ready"
                self.consecutive_failures = 0
                ready.set()
                await stop.wait()
        except Exception as exc:  # noqa: BLE001 - any failure to start or keep the server is reported, not raised
            self.last_error = _describe(exc)
            log.warning("server %s: %s", self.spec.name, self.last_error)
        finally:
            if generation == self.generation:  # a newer session may already have replaced this one
                self._client = None
                if self.state != "closed":
                    self.state = "dead"
            ready.set()

    async def client(self) -> Any:
        async with self._lock:
            if self._client is not None and self.state == "ready":
                return self._client
            if self.consecutive_failures:
                delay = min(BACKOFF_BASE_S * 2 ** (self.consecutive_failures - 1), BACKOFF_MAX_S)
                await anyio.sleep(max(0.0, self.last_failure_at + delay - time.monotonic()))
            if self._stop.is_set() and self.state != "closed":  # the last session was dropped: a new one's event
                self._stop = anyio.Event()
            self.state, self.generation = "starting", self.generation + 1
            ready = anyio.Event()
            self._tg.start_soon(self._own, ready, self._stop, name=f"mcp-session-{self.spec.name}")
            with anyio.move_on_after(CONNECT_TIMEOUT_S):
                await ready.wait()
            if self._client is None:
                self._note_failure()
                raise UnavailableError(f"server {self.spec.name!r} did not start: {self.last_error or 'timed out'}")
            return self._client

    def _note_tools(self, tools: list[Any]) -> None:
        from ..servers.core.mcp import DEFAULT_MODEL_META

        self.tools = [t.name for t in tools]
        for tool in tools:
            model = (tool.meta or {}).get(DEFAULT_MODEL_META) if tool.name == "generate" else None
            if isinstance(model, str) and model:
                self.default_model = model

    def _note_failure(self) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_failure_at = time.monotonic()

    def mark_dead(self, reason: str) -> None:
        """Drop the session: its process is ended (never left running beside its replacement), and the next call
        starts a new one."""
        self.last_error = reason
        self._note_failure()
        self.state = "dead"
        self._client = None
        self._stop.set()

    def close(self) -> None:
        self.state = "closed"
        self._stop.set()

    def status(self) -> ServerStatus:
        return ServerStatus(name=self.spec.name, source=self.spec.source, transport=self.spec.transport,
                            status=self.state, tools=self.tools, last_latency_ms=self.last_latency_ms,
                            calls=self.calls, failures=self.failures, last_error=self.last_error,
                            active=self.active, queued=max(self.admitted, self.waiting),
                            max_concurrency=self.spec.max_concurrency, max_queue=self.spec.max_queue,
                            info=self.info, **_key_and_endpoint(self.spec))

    @property
    def capacity(self) -> int:
        return self.spec.max_concurrency + self.spec.max_queue

    def retry_after_s(self) -> float:
        """A fair guess at when a place frees up: the queue ahead, drained at the observed call latency."""
        per_call_s = (self.last_latency_ms or 1000.0) / 1000
        rounds = math.ceil((self.admitted + self.waiting + 1) / self.spec.max_concurrency)
        return round(min(MAX_RETRY_AFTER_S, max(1.0, per_call_s * rounds)), 1)


class Admission:
    """The places one run holds in its servers' queues (see the module docstring). Idempotent to close."""

    def __init__(self, connections: Sequence[_Connection]) -> None:
        self._held: dict[str, tuple[_Connection, int]] = {}
        for connection in connections:
            held = self._held.get(connection.spec.name, (connection, 0))[1]
            self._held[connection.spec.name] = (connection, held + 1)
            connection.admitted += 1

    def take(self, connection: _Connection) -> None:
        """The run's leg on ``connection`` got its slot: its place in the queue is free."""
        entry = self._held.get(connection.spec.name)
        if entry is None:
            return
        if entry[1] <= 1:
            del self._held[connection.spec.name]
        else:
            self._held[connection.spec.name] = (connection, entry[1] - 1)
        connection.admitted -= 1

    def close(self) -> None:
        for connection, held in self._held.values():
            connection.admitted -= held
        self._held.clear()


def _status_line(instructions: str | None) -> str | None:
    """A server states its condition in a last ``Status: ...`` line of its instructions."""
    for line in reversed((instructions or "").splitlines()):
        if line.startswith("Status: "):
            return line.removeprefix("Status: ").strip()[:200]
    return None


async def _loaded(server: Any) -> None:
    """An in-process adapter's class and SDK, imported before its session counts as ready: one process imports
    every SDK, one at a time, so a first race would otherwise be decided by import order, not by the models (a
    server process imports its own after answering ``tools/list``, in parallel with the others)."""
    adapter = getattr(server, "adapter", None)
    loaded = getattr(adapter, "loaded", None)
    if loaded is not None:
        with contextlib.suppress(Exception):  # a failed import is each call's error (see servers/core/lazy.py)
            await loaded()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ServerPool:
    """``async with ServerPool(config) as pool: await pool.call("claude", "generate", {...})``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._tg: anyio.abc.TaskGroup | None = None
        self._connections: dict[str, _Connection] = {}

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._connections = {name: _Connection(spec, self._tg) for name, spec in self.config.servers.items()}
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        for connection in self._connections.values():
            connection.close()
        assert self._tg is not None
        return await self._tg.__aexit__(*exc)

    def _connection(self, source: str) -> _Connection:
        spec = self.config.server_for(source)
        return self._connections[spec.name]

    def admit(self, sources: Sequence[str]) -> Admission:
        """Hold a place in the queue of each server ``sources`` use, or refuse the run (see the module docstring).

        Raises:
            RateLimitError: a server's ``maxConcurrency + maxQueue`` places are all held; ``retry_after_s`` says
                when to try again.
            InvalidInputError: a source no server plays.
        """
        connections = [self._connection(source) for source in sources]
        for connection in dict.fromkeys(connections):
            wanted = connections.count(connection)
            if connection.admitted + connection.active + wanted > connection.capacity:
                spec = connection.spec
                retry = connection.retry_after_s()
                raise RateLimitError(
                    f"server {spec.name!r} is at capacity ({spec.max_concurrency} calls at once and "
                    f"{spec.max_queue} waiting, maxConcurrency/maxQueue): retry in {retry:g} s",
                    retry_after_s=retry, details={"server": spec.name})
        return Admission(connections)

    async def _slot(self, connection: _Connection, on_state: Callable[[CallState], None] | None,
                    admission: Admission | None) -> None:
        try:
            connection.limit.acquire_nowait()
        except anyio.WouldBlock:
            connection.waiting += 1
            if on_state is not None:
                on_state("queued")
            try:
                await connection.limit.acquire()
            finally:
                connection.waiting -= 1
        connection.active += 1
        if admission is not None:
            admission.take(connection)

    async def call(self, source: str, tool: str, arguments: dict[str, Any],
                   progress: ProgressCallback | None = None, *, admission: Admission | None = None,
                   on_state: Callable[[CallState], None] | None = None, idle_timeout_s: float | None = None) -> Any:
        """Call ``tool`` on the server playing ``source``; returns the ``CallToolResult``.

        ``admission``: the run the call is part of, whose place on this server the call gives back once it has its
        slot (see the module docstring). ``on_state("queued")`` is called when the call must wait for a concurrency slot, and
        ``on_state("running")`` once it has one (always, queued or not). The call is cancelled on the server after
        ``settings.call_timeout_s`` in all, or after ``idle_timeout_s`` without a progress notification.

        Raises:
            LLMMixerError: ``connection`` when the server died mid-call, ``unavailable`` when it cannot start,
                ``timeout`` when the call was cancelled for taking too long.
        """
        connection = self._connection(source)
        await self._slot(connection, on_state, admission)
        try:
            if on_state is not None:
                on_state("running")
            return await self._call(connection, tool, arguments, progress, idle_timeout_s)
        finally:
            connection.active -= 1
            connection.limit.release()

    async def _call(self, connection: _Connection, tool: str, arguments: dict[str, Any],
                    progress: ProgressCallback | None, idle_timeout_s: float | None) -> Any:
        client = await connection.client()
        generation = connection.generation
        started = time.perf_counter()
        connection.calls += 1
        settings = self.config.settings
        limit = _Deadline(settings.call_timeout_s, idle_timeout_s)

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            limit.progressed()
            if progress is not None:
                await progress(value, total, message)

        try:
            with limit.scope:
                # Cancelling this scope cancels the request on the server (notifications/cancelled), which closes
                # its upstream; the session stays open for the next call.
                result = await client.call_tool(tool, arguments, progress_callback=on_progress)
        except LLMMixerError:
            raise
        except Exception as exc:  # noqa: BLE001 - the transport's failures all mean the same to a caller
            if connection.generation == generation:
                connection.mark_dead(_describe(exc))
            raise ConnectionError_(f"server {connection.spec.name!r} failed during {tool}: {_describe(exc)}",
                                   details={"server": connection.spec.name}) from exc
        if limit.scope.cancelled_caught:
            await self._after_timeout(connection, generation, client)
            raise ConnectTimeoutError(f"server {connection.spec.name!r}: {limit.reason()}; the call was cancelled",
                                      details={"server": connection.spec.name})
        connection.last_latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return result

    @staticmethod
    async def _after_timeout(connection: _Connection, generation: int, client: Any) -> None:
        """A server whose call timed out must still answer: if it does not within :data:`CANCEL_ANSWER_S`, it is
        restarted (its process ended), never left running beside a new one."""
        answered = False
        with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_ANSWER_S):
            with contextlib.suppress(Exception):
                await client.list_tools()
                answered = True
        if not answered and connection.generation == generation:
            log.warning("server %s did not answer after a cancelled call; restarting it", connection.spec.name)
            connection.mark_dead(f"did not answer within {CANCEL_ANSWER_S:g} s after a call was cancelled")

    async def prepare(self, sources: list[str]) -> None:
        """Open the sessions of ``sources`` side by side, so a race measures the models, not process start-up.

        A server that cannot start is left for the call itself to report, as that leg's error.
        """
        async def open_one(source: str) -> None:
            try:
                await self._connection(source).client()
            except LLMMixerError:
                pass

        async with anyio.create_task_group() as tg:
            for source in dict.fromkeys(sources):
                tg.start_soon(open_one, source)

    def default_model(self, source: str) -> str | None:
        """The model the server playing ``source`` uses by default, as it said when its session opened."""
        return self._connection(source).default_model

    def statuses(self) -> list[ServerStatus]:
        return [c.status() for c in self._connections.values()]

    async def check(self) -> list[ServerStatus]:
        """Open every session (a health check): each server's status and tools."""
        async def probe(connection: _Connection) -> None:
            try:
                client = await connection.client()
                started = time.perf_counter()
                tools = await client.list_tools()  # a real round trip (ping is gone from the 2026 spec)
                connection._note_tools(tools.tools)
                connection.last_latency_ms = round((time.perf_counter() - started) * 1000, 3)
            except Exception as exc:  # noqa: BLE001 - reported in the status
                connection.last_error = _describe(exc)

        async with anyio.create_task_group() as tg:
            for connection in self._connections.values():
                tg.start_soon(probe, connection)
        return self.statuses()
