"""Runs: prompts and commands in flight, their live state, and their events in the event store.

One :class:`Runs` service backs every way in: the CLI, the web app and the orchestrator's own MCP server. A run
gets an id at once and goes on in the service's task group, so a caller may wait for it, follow its deltas, read a
snapshot later (from memory, or from the store after a restart) or cancel it, which cancels every leg end to end.

Events go to the store through one writer task, in the order they were emitted: a progress callback never waits
on a database, and ``run.done`` is written before anyone is told the run has ended.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from ..servers.core.errors import CancelledError_, InvalidInputError, LLMMixerError, NotFoundError
from ..servers.core.events import Event
from .config import Config
from .mixer import MODES, MixResult, Mixer
from .pool import ServerPool

__all__ = ["Runs", "RunState", "PARTIAL_CHARS"]

log = logging.getLogger("llmmixer.runs")

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARTIAL_CHARS = 8_000  # per source in a running snapshot: far below hosts' tool-output limits


@dataclass
class RunState:
    run_id: str
    kind: str  # ask | command | agent
    mode: str | None = None
    status: str = "running"  # running | done | error | cancelled
    deltas: list[tuple[str, str]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    finished: anyio.Event = field(default_factory=anyio.Event)
    changed: anyio.Event = field(default_factory=anyio.Event)
    cancel_requested: bool = False
    title: dict[str, str] = field(default_factory=dict)  # {"prompt": ...} or {"command": ...}, for run lists

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def snapshot(self) -> dict[str, Any]:
        base = {"job_id": self.run_id, "run_id": self.run_id, "kind": self.kind, **self.title}
        if self.result is not None:
            return {**base, **self.result, "status": self.status}
        if self.kind in ("ask", "agent"):
            partial: dict[str, str] = {}
            for source, text in self.deltas:
                partial[source] = partial.get(source, "") + text
            return {**base, "status": "running", "mode": self.mode,
                    "partial": {s: t[-PARTIAL_CHARS:] for s, t in partial.items()}}
        output = "".join(text for _, text in self.deltas)
        return {**base, "status": "running", "partial": output[-PARTIAL_CHARS * 4:]}


class Runs:
    """``async with Runs(config, store) as runs: run_id = await runs.start_ask(prompt="hi")``."""

    def __init__(self, config: Config, store: Any, pool: ServerPool | None = None) -> None:
        self.config = config
        self.store = store
        self.pool = pool or ServerPool(config)
        settings = config.settings
        self.mixer = Mixer(self.pool, hedge_delay_ms=settings.hedge_delay_ms, hedge_budget=settings.hedge_budget,
                           model_for=settings.model_for)
        self._runs: dict[str, RunState] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._send: Any = None
        self._emitted = 0
        self._written = 0
        self._written_changed = anyio.Event()

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Runs:
        await self.store.open()
        await self.pool.__aenter__()
        self._send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._writer, receive)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._tg is not None
        for state in self._runs.values():
            state.scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            while any(s.status == "running" for s in self._runs.values()):
                await anyio.sleep(0.01)
            await self.flush()
        self._send.close()
        # Task groups must be left from the scope they were entered in, so no shield around these two.
        await self._tg.__aexit__(None, None, None)
        await self.pool.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await self.store.close()

    async def _writer(self, receive: Any) -> None:
        async with receive:
            async for event in receive:
                try:
                    await self.store.append(event)
                except Exception:  # noqa: BLE001 - a store hiccup must not end every run
                    log.exception("event store append failed for %s %s", event.run, event.type)
                self._written += 1
                self._written_changed.set()
                self._written_changed = anyio.Event()

    async def flush(self) -> None:
        """Wait until every event emitted so far is in the store."""
        target = self._emitted
        while self._written < target:
            await self._written_changed.wait()

    def _emit(self, state: RunState, type_: str, source: str, data: dict[str, Any]) -> None:
        if type_ in ("delta", "pty.output", "agent.output"):
            state.deltas.append((source, data.get("text", "")))
            state.touch()
        self._emitted += 1
        self._send.send_nowait(Event(run=state.run_id, source=source, type=type_, data=data))  # type: ignore[arg-type]

    # -- starting runs ------------------------------------------------------------------------------------------------

    def _new_run(self, kind: str, mode: str | None = None) -> RunState:
        if self._tg is None:
            raise RuntimeError("Runs is not started: use `async with Runs(...)`")
        state = RunState(run_id=uuid.uuid4().hex[:16], kind=kind, mode=mode)
        self._runs[state.run_id] = state
        return state

    def resolve_models(self, models: list[str] | str | None) -> list[str]:
        available = self.config.model_sources
        if models is None or models == [] or models == "":
            chosen = [m for m in self.config.settings.models if m in available] or available
            return chosen
        if isinstance(models, str):
            models = [m.strip() for m in models.split(",") if m.strip()]
        unknown = [m for m in models if m not in available]
        if unknown:
            raise InvalidInputError(f"unknown model server(s) {', '.join(unknown)}; available: "
                                    f"{', '.join(available)}")
        return list(models)

    async def start_ask(self, prompt: str, models: list[str] | str | None = None, mode: str | None = None,
                        system: str | None = None, *, max_tokens: int | None = None,
                        temperature: float | None = None, response_schema: dict[str, Any] | None = None,
                        model_for: dict[str, str] | None = None) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError("prompt is empty: give the question to ask the models")
        mode = mode or self.config.settings.mode
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        sources = self.resolve_models(models)
        arguments: dict[str, Any] = {"prompt": prompt}
        for key, value in (("system", system), ("max_tokens", max_tokens), ("temperature", temperature),
                           ("response_schema", response_schema)):
            if value is not None:
                arguments[key] = value
        state = self._new_run("ask", mode)
        state.title = {"prompt": prompt[:200]}
        assert self._tg is not None
        self._tg.start_soon(self._run_ask, state, arguments, sources, mode, model_for or {})
        return state.run_id

    async def _run_ask(self, state: RunState, arguments: dict[str, Any], sources: list[str], mode: str,
                       model_for: dict[str, str]) -> None:
        def emit(type_: str, source: str, data: dict[str, Any]) -> None:
            self._emit(state, type_, source, data)

        emit("run.started", "orchestrator", {"kind": "ask", "mode": mode, "models": sources,
                                             "prompt_chars": len(arguments["prompt"])})
        result = MixResult(mode=mode, legs=[])
        try:
            with state.scope:
                await self.mixer.mix(arguments, sources, mode, emit, result, model_for)
        except LLMMixerError as error:
            await self._finish(state, "error", {"mode": mode, "winner": None, "legs": [], "total_cost_usd": None,
                                                "error": error.to_dict()["error"]})
            return
        status = "cancelled" if state.cancel_requested else ("done" if result.ok else "error")
        await self._finish(state, status, result.to_dict())

    async def start_command(self, command: str, cwd: str | None = None, timeout_s: float | None = None) -> str:
        if not isinstance(command, str) or not command.strip():
            raise InvalidInputError("command is empty: give the shell command to run")
        if timeout_s is not None and timeout_s <= 0:
            raise InvalidInputError("timeout_s must be positive")
        self.config.server_for("pty")
        arguments: dict[str, Any] = {"command": command}
        if cwd is not None:
            arguments["cwd"] = cwd
        if timeout_s is not None:
            arguments["timeout_s"] = timeout_s
        state = self._new_run("command")
        state.title = {"command": command[:200]}
        assert self._tg is not None
        self._tg.start_soon(self._run_command, state, arguments)
        return state.run_id

    async def _run_command(self, state: RunState, arguments: dict[str, Any]) -> None:
        self._emit(state, "run.started", "orchestrator", {"kind": "command", "command": arguments["command"]})

        async def progress(_p: float, _t: float | None, message: str | None) -> None:
            if message:
                self._emit(state, "pty.output", "pty", {"text": message})

        final: dict[str, Any] | None = None
        with state.scope:
            try:
                result = await self.pool.call("pty", "run", arguments, progress)
                payload = result.structured_content or {}
                if result.is_error:
                    error = payload.get("error")
                    final = {"error": error if isinstance(error, dict) else
                             {"kind": "server", "message": "the PTY runner failed without a classified error"}}
                else:
                    final = payload
            except LLMMixerError as error:
                final = {"error": error.to_dict()["error"]}
        if final is None:
            await self._finish(state, "cancelled", {"error": CancelledError_("cancelled").to_dict()["error"]})
            return
        self._emit(state, "pty.exit", "pty", final)
        await self._finish(state, "error" if "error" in final else "done", final)

    async def start_agents(self, request: Any) -> str:
        """Start coding agents on a task (an ``agents.AgentRequest``); checked before anything starts.

        Raises:
            InvalidInputError, NotFoundError: see ``agents.plan_agents``.
        """
        from .agents import agent_specs, plan_agents

        self.config.server_for("pty")
        state = self._new_run("agent", request.mode)
        try:
            plan = plan_agents(request, agent_specs(self.config.agents), state.run_id)
        except LLMMixerError:
            self._runs.pop(state.run_id, None)
            raise
        state.title = {"task": request.task[:200]}
        assert self._tg is not None
        self._tg.start_soon(self._run_agents, state, plan)
        return state.run_id

    async def _run_agents(self, state: RunState, plan: Any) -> None:
        from .agents import run_agents

        request = plan.request
        self._emit(state, "run.started", "orchestrator", {"kind": "agent", "mode": request.mode,
                                                          "agents": request.agents, "check": request.check})

        def emit(type_: str, source: str, data: dict[str, Any]) -> None:
            self._emit(state, type_, source, data)

        try:
            with state.scope:
                await run_agents(plan, self.pool, emit)
        except LLMMixerError as error:
            await self._finish(state, "error", {**plan.to_dict(), "error": error.to_dict()["error"]})
            return
        status = "cancelled" if state.cancel_requested else ("done" if plan.ok else "error")
        await self._finish(state, status, plan.to_dict())

    async def _finish(self, state: RunState, status: str, result: dict[str, Any]) -> None:
        with anyio.CancelScope(shield=True):
            state.status, state.result = status, result
            self._emit(state, "run.done", "orchestrator", {"status": status, **result})
            await self.flush()
        state.finished.set()
        state.touch()

    # -- following runs -----------------------------------------------------------------------------------------------

    def check_id(self, run_id: Any) -> str:
        if not isinstance(run_id, str) or not RUN_ID.match(run_id):
            raise InvalidInputError("malformed run id: expected the id returned when the run started")
        return run_id

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        self.check_id(run_id)
        state = self._runs.get(run_id)
        if state is not None:
            return state.snapshot()
        return await self._snapshot_from_store(run_id)

    async def _snapshot_from_store(self, run_id: str) -> dict[str, Any]:
        """A run this process does not hold: its final result from the store, if it ever finished."""
        events: list[Event] = []
        after: str | None = None
        while True:
            batch = await self.store.read_after(after, 1000, run=run_id)
            if not batch:
                break
            events.extend(batch)
            after = batch[-1].id
        if not events:
            raise NotFoundError(f"no run {run_id!r} (unknown, or older than the event store keeps)")
        base = {"job_id": run_id, "run_id": run_id}
        for event in reversed(events):
            if event.type == "run.done":
                data = dict(event.data)
                kind = events[0].data.get("kind", "ask")
                return {**base, "kind": kind, **data}
        kind = events[0].data.get("kind", "ask")
        return {**base, "kind": kind, "status": "interrupted",
                "message": "the process running this job stopped before it finished"}

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the run to end; True when it has ended (or is not held here)."""
        state = self._runs.get(run_id)
        if state is None:
            return True
        with anyio.move_on_after(max(timeout_s, 0.0)):
            await state.finished.wait()
        return state.finished.is_set()

    async def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        """``(source, text)`` of the run from its start, live until it ends."""
        state = self._runs.get(run_id)
        if state is None:
            return
        index = 0
        while True:
            changed = state.changed
            while index < len(state.deltas):
                yield state.deltas[index]
                index += 1
            if state.finished.is_set():
                return
            await changed.wait()

    async def cancel(self, run_id: str) -> dict[str, Any]:
        self.check_id(run_id)
        state = self._runs.get(run_id)
        if state is None:
            return await self._snapshot_from_store(run_id)
        if not state.finished.is_set():
            state.cancel_requested = True
            state.scope.cancel()
            with anyio.move_on_after(10):
                await state.finished.wait()
        return state.snapshot()

    async def servers(self) -> list[dict[str, Any]]:
        return [status.to_dict() for status in await self.pool.check()]

    def run_ids(self) -> list[str]:
        return list(self._runs)
