"""Run records and conversations: what each run was asked, how it ended, and the threads runs belong to.

Storage model: every run has one *record* in the event store's database, beside its events (the run log; see
:class:`RunLog`). A record is written when the run starts and replaced when it ends::

    {"run_id", "kind": "ask|command", "created", "updated", "status", "conversation_id",
     "prompt", "system", "models", "mode", "options", "command", "answer", "answer_source", "result"}

Records outlive the events' retention (a sqlite table that is not trimmed with the events; bounded in memory and
Redis), so ``llmmixer logs`` and ``GET /api/runs`` show prompts and results after a restart.

A *conversation* is the runs that share a ``conversation_id``, oldest first. Its history, as ``messages`` for the
next run, is each finished run's prompt as a user turn and its *answer* as the assistant turn: the winner's text in
a race, else the first leg that succeeded. A run that failed or was cancelled adds nothing to the thread, so the
next model never sees a question without its answer. The models need not be the ones that answered before: the
history is plain text, so a thread started on Claude goes on with GPT or Gemini.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .results import RunResult

__all__ = ["RunLog", "new_record", "finish_record", "answer_of", "messages_for", "summary", "new_conversation_id",
           "snapshot", "matches", "SUMMARY_KEYS", "MAX_HISTORY_RUNS"]

SUMMARY_KEYS = ("run_id", "kind", "created", "status", "conversation_id", "prompt", "command", "mode", "models",
                "winner", "total_cost_usd", "total_cost_partial", "exit_code", "answer")
MAX_HISTORY_RUNS = 200  # turns sent back to the models at most (the adapters' byte limit still applies)
ANSWER_PREVIEW = 200


@runtime_checkable
class RunLog(Protocol):
    """The record methods every event store has besides its events (additive to :class:`EventStore`)."""

    async def put_run(self, record: dict[str, Any]) -> None:
        """Insert or replace the record of ``record["run_id"]``."""
        ...

    async def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Records newest first; ``query`` matches prompt, system or answer (case-insensitive substring)."""
        ...

    async def conversation_runs(self, conversation_id: str, limit: int = MAX_HISTORY_RUNS) -> list[dict[str, Any]]:
        """The conversation's newest ``limit`` records, oldest first."""
        ...

    async def latest_conversation(self) -> str | None:
        """The conversation of the newest run that has one."""
        ...


def new_conversation_id() -> str:
    return uuid.uuid4().hex[:16]


def new_record(run_id: str, kind: str, *, conversation_id: str | None = None, prompt: str | None = None,
               system: str | None = None, models: list[str] | None = None, mode: str | None = None,
               options: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    now = time.time()
    record: dict[str, Any] = {"run_id": run_id, "kind": kind, "created": now, "updated": now, "status": "running",
                              "conversation_id": conversation_id, "prompt": prompt, "system": system,
                              "models": models, "mode": mode, "options": options or {}, "command": command,
                              "answer": None, "answer_source": None, "result": None}
    return record


def finish_record(record: dict[str, Any], status: str, result: RunResult, wire: dict[str, Any]) -> dict[str, Any]:
    """The record of a run that ended with ``result``; ``wire`` is ``result.wire()``, made once by the caller."""
    answer, source = answer_of(result) if status == "done" else (None, None)
    return {**record, "status": status, "updated": time.time(), "result": wire, "answer": answer,
            "answer_source": source}


def answer_of(result: RunResult) -> tuple[str | None, str | None]:
    """The text kept as the assistant turn: the winner's, else the first successful leg's; ``(text, source)``.
    A command has none; an agent leg names no source."""
    from .results import AgentResult, AskResult

    legs: list[tuple[str | None, Any, Any]]
    if isinstance(result, AskResult):
        legs = [(leg.source, leg.status, leg.text) for leg in result.legs]
    elif isinstance(result, AgentResult):
        legs = [(leg.get("source"), leg.get("status"), leg.get("text")) for leg in result.legs]
    else:
        return None, None
    ordered = [leg for leg in legs if leg[0] == result.winner] + legs
    for source, status, text in ordered:
        if status in ("won", "done") and isinstance(text, str):
            return text, source
    return None, None


def messages_for(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation so far as ``messages`` (user, assistant, user, ...), from records oldest first."""
    messages: list[dict[str, str]] = []
    for record in records:
        if record.get("status") == "done" and record.get("prompt") and record.get("answer") is not None:
            messages.append({"role": "user", "content": record["prompt"]})
            messages.append({"role": "assistant", "content": record["answer"]})
    return messages


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """One line of a run list: the record's fields and the result's headline figures, answer shortened."""
    result = record.get("result") or {}
    merged = {**{k: v for k, v in result.items() if k in SUMMARY_KEYS}, **{k: v for k, v in record.items()
                                                                           if k in SUMMARY_KEYS}}
    if merged.get("answer") and len(merged["answer"]) > ANSWER_PREVIEW:
        merged["answer"] = merged["answer"][:ANSWER_PREVIEW] + "…"
    return {k: merged[k] for k in SUMMARY_KEYS if k in merged and merged[k] is not None}


def matches(record: dict[str, Any], query: str | None, conversation_id: str | None) -> bool:
    """The filter every store applies where its database cannot (memory, Redis)."""
    if conversation_id is not None and record.get("conversation_id") != conversation_id:
        return False
    if query:
        needle = query.casefold()
        return any(needle in (record.get(key) or "").casefold() for key in ("prompt", "system", "answer", "command"))
    return True


def snapshot(record: dict[str, Any]) -> dict[str, Any]:
    """A run read back from the log: what was asked, then its final result (or that it never finished)."""
    run_id = record["run_id"]
    base: dict[str, Any] = {"job_id": run_id, "run_id": run_id, "kind": record.get("kind", "ask")}
    for key in ("prompt", "command", "system", "conversation_id", "models", "created"):
        if record.get(key) is not None:
            base[key] = record[key]
    if record.get("mode") is not None:
        base["mode"] = record["mode"]
    result = record.get("result")
    if result is None:
        return {**base, "status": "interrupted",
                "message": "the process running this job stopped before it finished"}
    return {**base, **result, "status": record.get("status", "done")}
