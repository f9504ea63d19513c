"""The event model shared by every server, the orchestrator, the event stores, SSE and the dashboard.

An :class:`Event` is created without an id; the event store assigns one when it appends it (strictly increasing
per store). Ids are opaque strings to clients: an integer for the memory and sqlite stores, the entry id
(``"1732500000123-0"``) for Redis Streams.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

__all__ = ["Event", "EventType", "Source", "EVENT_TYPES", "EVENT_TYPE_ORDER", "TEXT_EVENT_TYPES", "TIMELINE_TYPES",
           "LEG_ENDS", "LEG_STATUS_AFTER"]

EventType = Literal[
    "run.started",
    "leg.queued",
    "leg.started",
    "delta",
    "leg.first_token",
    "leg.tool_call",
    "leg.done",
    "leg.error",
    "leg.cancelled",
    "leg.skipped",
    "leg.recovery",
    "race.won",
    "pty.output",
    "pty.waiting",
    "pty.exit",
    "pty.refused",  # a program refused by the sandbox's exec-time guard in a PTY session
    "run.done",
    "store.gap",  # events the store could not keep (an outage outlasted the spool, a lost database file)
    # coding-agent legs (orchestrator/agents): raw terminal text, then what the CLI's JSON stream said
    "agent.output",
    "agent.text",
    "agent.tool_call",
    "agent.tool_result",
    "agent.command",
    "agent.file_changed",
    "agent.exit",
    "agent.check",
]
# Adding a type is one line in EventType above: the store, SSE, the dashboard (through /api/meta) and the drift test
# (tests/test_one_list.py) all read it from here.
EVENT_TYPE_ORDER: tuple[str, ...] = get_args(EventType)
EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPE_ORDER)
# The types that mark a run's timeline (orchestrator/timeline.py; the dashboard's timeline.js through /api/meta): the
# run's bounds and each leg's start, first token and end, with the end each leg type stands for.
LEG_ENDS: dict[str, str] = {"leg.done": "done", "leg.error": "error", "leg.cancelled": "cancelled"}
# A leg's status after each of its events (a run's own snapshot says the same once it ends).
LEG_STATUS_AFTER: dict[str, str] = {"leg.queued": "queued", "leg.started": "running", "leg.first_token": "running",
                                    **LEG_ENDS, "leg.skipped": "skipped"}
TIMELINE_TYPES: frozenset[str] = frozenset({"run.started", "leg.started", "leg.first_token", "run.done", *LEG_ENDS})
# The types whose ``data.text`` is streamed output (a model's delta, a terminal's bytes).
TEXT_EVENT_TYPES: frozenset[str] = frozenset({"delta", "pty.output", "agent.output"})

# Sources are open-ended on purpose: a new adapter registers under its own name without touching this module.
Source = str


@dataclass(frozen=True, slots=True)
class Event:
    run: str
    source: Source
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")

    def with_id(self, event_id: str | int) -> Event:
        return replace(self, id=str(event_id))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "run": self.run, "ts": self.ts, "source": self.source, "type": self.type,
                "data": self.data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Event:
        return cls(
            run=payload["run"],
            source=payload["source"],
            type=payload["type"],
            data=payload.get("data") or {},
            ts=payload.get("ts", time.time()),
            id=None if payload.get("id") is None else str(payload["id"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.from_dict(json.loads(text))

