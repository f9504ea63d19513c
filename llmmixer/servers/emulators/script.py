"""Scripted turns: the emulator plays an agent's model, one turn per round trip of the agent's loop.

A script is set per vendor through the control API (``PUT /_emulator/script/{vendor}``)::

    {"turns": [{"tool": "Bash", "args": {"command": "echo hi > a.txt"}},
               {"say": "Done: a.txt holds hi."}]}

A turn may ``say`` text, call one ``tool`` with ``args``, or both (the text comes first). Which turn answers a
request is decided by the request itself, not by a counter: turn *n* answers a conversation that already holds *n*
tool results (distinct call ids: Gemini CLI repeats a result in a resumed session). A retried or repeated request therefore gets the same turn again, and requests that declare no tools
(title generation, routing, quota probes) are never scripted: they get the vendor's behaviour as usual. After the
last turn, a request gets the vendor's behaviour too (its default reply).

Each tool result a conversation carries is recorded once (by call id), with the tool's name and its output as
text, so a test can assert what the agent's tool really did (``GET /_emulator/tool_results``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Turn", "Script", "ToolResult", "ToolResults", "call_id", "text_of"]


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str | None = Field(default=None, description="assistant text (before the tool call, if there is one)")
    tool: str | None = Field(default=None, description="name of the tool to call, as the agent declared it")
    args: dict[str, Any] = Field(default_factory=dict, description="the tool call's arguments")

    @model_validator(mode="after")
    def _something(self) -> Turn:
        if self.say is None and self.tool is None:
            raise ValueError("a turn needs `say`, `tool`, or both")
        if self.args and self.tool is None:
            raise ValueError("`args` without `tool`")
        return self


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: list[Turn] = Field(min_length=1)

    def turn_for(self, tool_results: int) -> Turn | None:
        """The turn answering a conversation holding ``tool_results`` results; None after the last one."""
        return self.turns[tool_results] if tool_results < len(self.turns) else None


@dataclass(frozen=True, slots=True)
class ToolResult:
    vendor: str
    call_id: str
    name: str | None
    output: str
    request_id: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ToolResults:
    """Every distinct tool result seen, in arrival order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], ToolResult] = {}

    def add(self, vendor: str, request_id: int, results: list[tuple[str, str | None, str]]) -> None:
        with self._lock:
            for cid, name, output in results:
                key = (vendor, cid)
                if key not in self._seen:
                    self._seen[key] = ToolResult(vendor, cid, name, output, request_id, time.time())

    def list(self, vendor: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._seen.values() if vendor is None or r.vendor == vendor]

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_ids = itertools.count(1)


def call_id(prefix: str) -> str:
    """A fresh tool-call id in the vendor's shape (``toolu_…``, ``call_…``)."""
    return f"{prefix}{next(_ids):04d}{time.time_ns() % 10**12:012d}"


def text_of(value: Any) -> str:
    """A tool result's content as text: strings as they are, content blocks joined, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(text_of(item.get("text", item) if isinstance(item, dict) else item) for item in value)
    return json.dumps(value, ensure_ascii=False)
