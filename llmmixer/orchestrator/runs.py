"""Runs: prompts and commands in flight, their live state, and their events in the event store.

One :class:`Runs` service backs every way in: the CLI, the web app and the orchestrator's own MCP server. A run
gets an id at once and goes on in the service's task group, so a caller may wait for it, follow its deltas, read a
snapshot later (from memory, or from the store after a restart) or cancel it, which cancels every leg end to end.
What a run does is its run kind's (:mod:`.kinds`: an ask, a command, coding agents), which :meth:`Runs.start`
finds by the request's type; ``Runs`` keeps the lifecycle common to all of them (admission, ids, records, the
cache, cancel and shutdown).

Events go to the store through one :class:`~.stores.writer.StoreWriter`, in the order they were emitted: a progress
callback never waits on a database; events ready together are written in one transaction; a failing store is
retried from a bounded spool and what has to be given up is recorded as ``store.gap`` events. ``run.done`` is
written before anyone is told the run has ended (unless the store is failing: then it waits in the spool). A run
is refused with ``unavailable`` only when the store is failing *and* the spool is nearly full.

Memory stays flat however long the service runs: a finished run stays in memory only among the few most recent
(:data:`CACHE_RUNS`, :data:`CACHE_CHARS`), and only once its events are settled in the store; after that its
snapshot is rebuilt from the store (:mod:`.run_record`, which also keeps each text once in the store).

Shutting down (leaving ``async with``, or :meth:`Runs.interrupt` on SIGTERM) ends the runs in flight as
``interrupted``, each leg with what it had produced, and writes them before the store closes.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import anyio
import anyio.abc

from ..servers.core.errors import InvalidInputError, NotFoundError, UnavailableError, UnexpectedError
from ..servers.core.events import TEXT_EVENT_TYPES, Event, EventType
from . import history, run_record, stats, timeline
from .costcap import SpendMeter, day_start
from .config import Config
from .cooldown import Cooldowns, default_path
from .kinds import RunKind, kind_for
from .legs import name_legs, parse_leg
from .mixer import MixResult, Mixer
from .pool import Admission, ServerPool
from .requests import AgentRequest, AskRequest, CommandRequest, RunRequest, validate_request
from .results import RUN_RESULT, AgentResult, AskResult, LegResult, RunResult
from .statuses import RunStatus
from .stores.writer import StoreWriter
from .telemetry import open_telemetry

__all__ = ["Runs", "RunState", "PARTIAL_CHARS", "CACHE_RUNS", "CACHE_CHARS", "RECENT_IDS"]

log = logging.getLogger("llmmixer.runs")

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARTIAL_CHARS = 8_000  # per source in a running snapshot: far below hosts' tool-output limits
CACHE_RUNS = 16  # finished runs kept in memory; older ones are read back from the store
CACHE_CHARS = 8 << 20  # ...and at most about this much of their text
RECENT_IDS = 1000  # run ids (and titles) remembered for the history list
SHUTDOWN_S = 5.0  # how long leaving Runs waits for interrupted runs and the store
RECORD_WAIT_S = 2.0  # how long starting a run waits for its record to be written (a frozen disk: it goes on)

EVENTS_LIMIT = 500  # events in one read of a run's stored events (Runs.events)


@dataclass
class RunState:
    run_id: str
    kind: str  # ask | command | agent
    mode: str | None = None
    status: RunStatus = "running"
    deltas: list[tuple[str, str]] = field(default_factory=list)
    result: RunResult | None = None
    wire: dict[str, Any] | None = None  # result.wire(), made once when the run ends
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    finished: anyio.Event = field(default_factory=anyio.Event)
    # Set (then dropped) at the next change; made only when someone waits, so a delta nobody follows costs no Event.
    _changed: anyio.Event | None = None
    cancel_requested: bool = False
    interrupted: bool = False  # ended by Runs.interrupt() (shutdown), not by a caller
    title: dict[str, str] = field(default_factory=dict)  # {"prompt": ...} or {"command": ...}, for run lists
    record: dict[str, Any] | None = None  # what the run log keeps (history.py)
    conversation_id: str | None = None  # an ask's conversation
    models: list[str] | None = None  # an ask's legs, in order
    marks: list[tuple[str, str, float]] = field(default_factory=list)  # (type, source, ts) for the timeline
    last_seq: int = 0  # the writer's accept number of this run's newest event
    chars: int = 0  # streamed text held in `deltas`
    mix: MixResult | None = None  # an ask's legs as they go (their status: queued, running, done...)
    command_state: str = "pending"  # a command's one leg: queued while the runner is busy, then running
    spend: SpendMeter | None = None  # an ask with max_cost_usd: its spend against the cap (costcap.py)

    def set_command_state(self, state: str) -> None:
        self.command_state = state
        self.touch()

    def touch(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def next_change(self) -> anyio.Event:
        """An event set at the next :meth:`touch`: take it before reading the state, then wait on it."""
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def snapshot(self) -> dict[str, Any]:
        base = {"job_id": self.run_id, "run_id": self.run_id, "kind": self.kind, **self.title}
        if self.conversation_id:
            base["conversation_id"] = self.conversation_id
        if self.wire is not None:
            return {**base, **self.wire, "status": self.status}
        if self.kind in ("ask", "agent"):
            partial: dict[str, str] = {}
            for source, text in self.deltas:
                partial[source] = partial.get(source, "") + text
            legs = [{"source": leg.source, "status": leg.status} for leg in (self.mix.legs if self.mix else [])]
            return {**base, "status": "running", "mode": self.mode, "models": self.models,
                    "legs": legs,
                    "partial": {s: t[-PARTIAL_CHARS:] for s, t in partial.items()}}
        output = "".join(text for _, text in self.deltas)
        return {**base, "status": "running", "legs": [{"source": "pty", "status": self.command_state}],
                "partial": output[-PARTIAL_CHARS * 4:]}


class Runs:
    """``async with Runs(config, store) as runs: run_id = await runs.start_ask(prompt="hi")``."""

    def __init__(self, config: Config, store: Any, pool: ServerPool | None = None, *,
                 writer: StoreWriter | None = None) -> None:
        self.config = config
        self.store = store
        self.pool = pool or ServerPool(config)
        # (base URL, token) of the gateway serving this service, set once its web app listens; agents given a
        # gateway model (AgentRequest.model) are pointed at it.
        self.gateway: tuple[str, str] | None = None
        settings = config.settings
        cooldowns = Cooldowns(consecutive_failures=settings.breaker_failures, breaker_s=settings.breaker_s,
                              path=settings.cooldown_file or default_path(), max_wait_s=settings.max_cooldown_s)
        self.mixer = Mixer(self.pool, hedge_delay_ms=settings.hedge_delay_ms, hedge_budget=settings.hedge_budget,
                           model_for=settings.model_for, prices=settings.prices, cooldowns=cooldowns,
                           fast_retry_wait_s=settings.fast_retry_wait_s)
        self.writer = writer or StoreWriter(store)
        # Spans and metrics from the events below (telemetry.py); None when telemetry is off.
        self.telemetry = open_telemetry(config, prometheus=settings.telemetry.prometheus,
                                        cooldowns=cooldowns.cooling, spool=lambda: self.writer.pending)
        self._runs: dict[str, RunState] = {}  # in flight, and the recent finished ones
        self._finished: OrderedDict[str, None] = OrderedDict()  # finished runs still in _runs, oldest first
        self._finished_chars = 0
        self._recent: OrderedDict[str, dict[str, str]] = OrderedDict()  # run id -> title, newest last
        self._tg: anyio.abc.TaskGroup | None = None
        self._spent_today: tuple[float, float] | None = None  # (the day's start, USD spent) for settings.budget
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.store.open()
        await self.pool.__aenter__()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        await self._tg.start(self.writer.run)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._tg is not None
        self._stopping = True
        with anyio.CancelScope(shield=True):
            await self.interrupt(SHUTDOWN_S)
            await self.writer.aclose(SHUTDOWN_S)
        # Task groups must be left from the scope they were entered in, so no shield around these two.
        await self._tg.__aexit__(None, None, None)
        await self.pool.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await self.store.close()

    async def interrupt(self, timeout_s: float = SHUTDOWN_S) -> int:
        """End every run in flight as ``interrupted`` (their legs keep what they had produced) and wait, up to
        ``timeout_s``, until they are written to the store. Returns how many runs were interrupted."""
        running = [state for state in self._runs.values() if not state.finished.is_set()]
        for state in running:
            state.interrupted = True
            state.scope.cancel()
        with anyio.move_on_after(timeout_s):
            for state in running:
                await state.finished.wait()
            await self.writer.flush()
        return len(running)

    async def flush(self) -> bool:
        """Wait until every event emitted so far is in the store; False (at once) while the store is failing,
        when they wait in the writer's spool."""
        return await self.writer.flush()

    def _emit(self, state: RunState, type_: EventType, source: str, data: dict[str, Any]) -> None:
        if type_ in TEXT_EVENT_TYPES:
            text = data.get("text", "")
            state.deltas.append((source, text))
            state.chars += len(text)
        else:
            data = run_record.compact(type_, source, data, state.deltas)
        event = Event(run=state.run_id, source=source, type=type_, data=data)
        if type_ in timeline.MARK_TYPES:
            state.marks.append((type_, source, event.ts))
        state.last_seq = self.writer.submit(event)
        if self.telemetry is not None:
            self.telemetry.observe(event)
        if state.spend is not None and state.spend.observe(event):
            log.info("run %s crossed its cost cap ($%s): cancelling its remaining legs", state.run_id,
                     state.spend.max_cost_usd)
            state.scope.cancel()
        state.touch()  # deltas and status changes alike wake whoever follows the run

    # -- starting runs ------------------------------------------------------------------------------------------------

    def _new_run(self, kind: str, mode: str | None = None, title: dict[str, str] | None = None) -> RunState:
        if self._tg is None:
            raise RuntimeError("Runs is not started: use `async with Runs(...)`")
        state = RunState(run_id=uuid.uuid4().hex[:16], kind=kind, mode=mode, title=title or {})
        self._runs[state.run_id] = state
        self._recent[state.run_id] = state.title
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        return state

    def _check_store(self) -> None:
        """Raises:
            UnavailableError: the event store is failing and the writer's spool is nearly full.
        """
        refusal = self.writer.refusal()
        if refusal is not None:
            raise UnavailableError(f"{refusal}; try again shortly", retry_after_s=self.writer.backoff[-1])

    def _retire(self, state: RunState) -> None:
        """A finished run joins the cache; the oldest finished ones whose events are in the store leave memory."""
        self._finished[state.run_id] = None
        self._finished_chars += state.chars
        while len(self._finished) > CACHE_RUNS or (self._finished_chars > CACHE_CHARS and len(self._finished) > 1):
            oldest = self._runs.get(next(iter(self._finished)))
            if oldest is not None and not self.writer.is_settled(oldest.last_seq):
                break  # not in the store yet: its snapshot can only come from memory
            run_id, _ = self._finished.popitem(last=False)
            gone = self._runs.pop(run_id, None)
            if gone is not None:
                self._finished_chars -= gone.chars

    def resolve_models(self, models: list[str] | str | None) -> list[str]:
        available = self.config.model_sources
        if models is None or models == [] or models == "":
            chosen = [m for m in self.config.settings.models if m in available] or available
            return chosen
        if isinstance(models, str):
            models = [m.strip() for m in models.split(",") if m.strip()]
        specs = [parse_leg(m) for m in models]
        unknown = [m for m, (server, _) in zip(models, specs) if server not in available]
        if unknown:
            raise InvalidInputError(f"unknown model server(s) {', '.join(unknown)}; available: "
                                    f"{', '.join(available)} (a server may be written SERVER:MODEL, e.g. gpt:gpt-5)")
        return name_legs(specs)  # one server twice: legs told apart (gpt:gpt-5, gpt:gpt-5-mini; claude#1, claude#2)

    async def start(self, request: RunRequest) -> str:
        """Start the run ``request`` describes (an ask, a command, coding agents); its run id at once.

        ``max_cost_usd`` caps the run's spend: refused before dispatch when the estimate is over it, legs
        cancelled when the spend crosses it (costcap.py); ``settings.budget`` caps the day's.

        Raises:
            InvalidInputError: what only the service can check: an unknown mode, model server, aggregator or agent,
                unreadable images, a malformed conversation id.
            NotFoundError: ``conversation_id`` names no conversation the store holds; an agent CLI is missing.
            RateLimitError, UnavailableError: a server's queue is full; the event store is failing.
            BudgetError: an ask's estimate is over its ``max_cost_usd``, or the daily budget is used up (asks and
                agents alike).
        """
        kind = await kind_for(request).prepare(self, request)
        self._check_store()
        # RateLimitError (HTTP 429) when a server's queue is full
        admission = self.pool.admit(kind.places)
        try:
            state = self._new_run(kind.name, kind.mode, kind.title)
            try:
                state.record = kind.open(state)
            except BaseException:
                self._runs.pop(state.run_id, None)
                raise
            state.spend, state.conversation_id, state.models = kind.spend, kind.conversation_id, kind.models
            await self._put_record(state.record)
        except BaseException:
            admission.close()  # the run never started: its places are given back
            raise
        assert self._tg is not None
        self._tg.start_soon(self._execute, state, kind, admission)
        return state.run_id

    async def start_ask(self, prompt: str, models: list[str] | str | None = None, mode: str | None = None,
                        system: str | None = None, **fields: Any) -> str:
        """``start(AskRequest(prompt=prompt, ...))`` for callers in Python; ``fields`` are :class:`AskRequest`'s.

        Raises:
            InvalidInputError: a field :class:`AskRequest` refuses; see :meth:`start`.
        """
        return await self.start(validate_request(AskRequest, {"prompt": prompt, "models": models, "mode": mode,
                                                             "system": system, **fields}))

    async def start_command(self, command: str, cwd: str | None = None, timeout_s: float | None = None) -> str:
        """``start(CommandRequest(...))`` for callers in Python."""
        return await self.start(validate_request(CommandRequest, {"command": command, "cwd": cwd,
                                                                  "timeout_s": timeout_s}))

    async def start_agents(self, request: AgentRequest) -> str:
        """``start(request)`` for callers in Python."""
        return await self.start(request)

    async def _execute(self, state: RunState, kind: RunKind, admission: Admission) -> None:
        """Run ``kind`` in the run's scope and end the run with its result; the run's places are given back at the
        end (each leg gives back its own as it gets its slot)."""
        def emit(type_: EventType, source: str, data: dict[str, Any]) -> None:
            self._emit(state, type_, source, data)

        try:
            with state.scope:
                await kind.run(emit, admission)
            status, result = kind.result()
            await self._finish(state, status, result)
        except Exception:  # noqa: BLE001 - one run's bug must not end the task group every run lives in
            log.exception("run %s failed unexpectedly", state.run_id)
            await self._crashed(state)
        finally:
            admission.close()

    async def _crashed(self, state: RunState) -> None:
        """End a run whose own code raised (a bug) as ``error``, so its waiters, its record and the log agree."""
        if state.finished.is_set():
            return
        error = UnexpectedError("internal error in this run; see the server log").to_dict()["error"]
        try:
            await self._finish(state, "error", RUN_RESULT.validate_python(
                {"kind": state.kind, "mode": state.mode, "winner": None, "legs": [], "error": error}))
        except Exception:  # noqa: BLE001
            log.exception("run %s could not be finished", state.run_id)
            state.status, state.result = "error", RUN_RESULT.validate_python({"kind": state.kind, "error": error})
            state.wire = state.result.wire()
            state.finished.set()
            state.touch()

    def start_refusal(self) -> str | None:
        """Why a run started now could not run (``/healthz`` answers 503 with it), else None."""
        if self._tg is None or self._stopping or self._tg.cancel_scope.cancel_called:
            return "the run scheduler is not running"
        return self.writer.refusal()

    async def spent_today(self) -> float:
        """USD spent by the runs in the log since local midnight (read once a day, then kept up to date)."""
        start = day_start()
        if self._spent_today is None or self._spent_today[0] != start:
            total = 0.0
            async for record in stats.records_since(self.store, start):
                total += _run_cost(record.get("result"))
            self._spent_today = (start, total)
        return self._spent_today[1]

    async def _finish(self, state: RunState, status: RunStatus, result: RunResult) -> None:
        with anyio.CancelScope(shield=True):
            if isinstance(result, AskResult):
                state.marks.append(("run.done", "orchestrator", time.time()))
                legs = [leg.wire() for leg in result.legs]
                update: dict[str, Any] = {"timeline": timeline.build(state.marks, legs)}
                if state.conversation_id:
                    update = {"conversation_id": state.conversation_id, **update}
                result = result.model_copy(update=update)
            state.status, state.result = status, result
            wire = result.wire()  # the one serialization, for the event, the run log and every snapshot
            state.wire = wire
            if self._spent_today is not None:
                self._spent_today = (self._spent_today[0], self._spent_today[1] + stats.usd(
                    result.total_cost_usd if isinstance(result, AskResult | AgentResult) else None))
            self._emit(state, "run.done", "orchestrator", {"status": status, **wire})
            await self.flush()
            if state.record is not None:
                state.record = history.finish_record(state.record, status, result, wire)
                # The log keeps the result with its streamed texts left in the events (run_record).
                await self._put_record({**state.record, "result": run_record.compact(
                    "run.done", "orchestrator", wire, state.deltas)})
        state.finished.set()
        state.touch()
        self._retire(state)

    # -- the run log and conversations -------------------------------------------------------------------------------

    async def _put_record(self, record: dict[str, Any]) -> None:
        """The record goes through the writer (spooled and retried through an outage, like the events); while the
        store takes writes, this returns once it is written, so the history lists the run at once."""
        self.writer.submit_record(record)
        await self.writer.flush_record(record["run_id"], RECORD_WAIT_S)

    async def latest_conversation(self) -> str | None:
        """The conversation of the newest run in the store (what ``llmmixer ask -c`` continues)."""
        return await self.store.latest_conversation()

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Run summaries from the run log, newest first; runs this process holds carry their live status."""
        records = await self.store.list_runs(limit=limit, offset=offset, query=query,
                                             conversation_id=conversation_id)
        out = []
        for record in records:
            line = history.summary(record)
            held = self._runs.get(record["run_id"])
            if held is not None:
                line["status"] = held.status
            out.append(line)
        return out

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
        """A run this process does not hold (finished a while ago, or before a restart): its record (prompt and
        final result) from the run log with the texts put back from its events, else what its events say.

        Raises:
            NotFoundError: the store holds neither a record nor an event of this run.
        """
        record = await self.store.get_run(run_id)
        snap = history.snapshot(record) if record is not None else None
        unfinished = record is not None and record.get("result") is None  # killed, or its last record not written
        if snap is not None and not unfinished and not run_record.needs_events(snap):
            return snap
        events: list[Event] = []
        after: str | None = None
        while True:
            batch = await self.store.read_after(after, 1000, run=run_id)
            if not batch:
                break
            events.extend(batch)
            after = batch[-1].id
        if snap is not None and unfinished and events:
            return {**snap, **run_record.snapshot(run_id, events)}  # rebuilt from its stored deltas
        if snap is not None:
            return run_record.expand(snap, events)
        if not events:
            raise NotFoundError(f"no run {run_id!r} (unknown, or older than the event store keeps)")
        return {**self._recent.get(run_id, {}), **run_record.snapshot(run_id, events)}

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the run to end; True when it has ended (or is not held here)."""
        state = self._runs.get(run_id)
        if state is None:
            return True
        with anyio.move_on_after(max(timeout_s, 0.0)):
            await state.finished.wait()
        return state.finished.is_set()

    async def decided(self, run_id: str, timeout_s: float) -> tuple[LegResult, float | None] | None:
        """Wait up to ``timeout_s`` for an ask held here to have its winner: the winning leg's result and the cost
        known so far, the moment the winner is known (before the losers have closed); None when the run ended, or
        is not held here, without one (read :meth:`snapshot`)."""
        state = self._runs.get(run_id)
        if state is None:
            return None
        with anyio.move_on_after(max(timeout_s, 0.0)):
            while True:
                changed = state.next_change()
                mix = state.mix
                if mix is not None and mix.winner is not None:
                    winner = next(leg for leg in mix.legs if leg.source == mix.winner)
                    return winner.result(), mix.total_cost_usd
                if state.finished.is_set():
                    return None
                await changed.wait()
        return None

    async def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        """``(source, text)`` of the run from its start, live until it ends."""
        state = self._runs.get(run_id)
        if state is None:
            return
        index = 0
        while True:
            changed = state.next_change()
            while index < len(state.deltas):
                yield state.deltas[index]
                index += 1
            if state.finished.is_set():
                return
            await changed.wait()

    async def follow(self, run_id: str) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]:
        """At each change of a run held here: the ``(source, text)`` deltas since the previous step, and each leg's
        status now (``queued``, ``running``, ``done``, ``cancelled``...); ends when the run ends."""
        state = self._runs.get(run_id)
        if state is None:
            return
        index = 0
        while True:
            changed = state.next_change()
            fresh = state.deltas[index:]
            index += len(fresh)
            yield fresh, {leg.source: leg.status for leg in (state.mix.legs if state.mix else [])}
            if state.finished.is_set():
                return
            await changed.wait()

    async def events(self, run_id: str, after: str | None, wait_s: float, limit: int = EVENTS_LIMIT) -> list[Event]:
        """The run's stored events after ``after`` (its first when None), at most ``limit``; when there are none yet
        and the run goes on, waits up to ``wait_s`` for the next."""
        self.check_id(run_id)
        with anyio.move_on_after(max(wait_s, 0.0)):
            while True:
                newest = await self.store.last_id()
                batch = await self.store.read_after(after, limit, run=run_id)
                state = self._runs.get(run_id)
                if batch or state is None or state.finished.is_set() and not self.writer.pending:
                    return batch
                await self.store.wait_after(newest, max(wait_s, 0.0))
        return []

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
        """Each server's status, with its cooldown (``cooling_until``, ``cooldown_reason``)."""
        return [{**status.to_dict(), **self.mixer.cooldowns.describe(status.source)}
                for status in await self.pool.check()]

    def server_statuses(self) -> list[dict[str, Any]]:
        """What is known of each server now, without waiting for any (``idle``, ``starting``, ``ready``, ``dead``)."""
        return [{**status.to_dict(), **self.mixer.cooldowns.describe(status.source)}
                for status in self.pool.statuses()]

    def in_flight(self) -> int:
        """How many runs started here have not ended yet."""
        return sum(1 for state in self._runs.values() if not state.finished.is_set())

    def run_ids(self) -> list[str]:
        """The newest runs started here (at most :data:`RECENT_IDS`), oldest first."""
        return list(self._recent)


def _run_cost(result: Any) -> float:
    return stats.usd(result.get("total_cost_usd") if isinstance(result, dict) else None)
