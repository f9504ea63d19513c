"""The states a leg, a run and a server connection can be in, as ``Literal`` types (mypy checks every assignment;
the values are what the JSON results, the events and the dashboard carry)."""

from __future__ import annotations

from typing import Literal

__all__ = ["LegStatus", "RunStatus", "ServerState", "FINISHED_LEG_STATUSES"]

# A leg: waiting to start, waiting for a concurrency slot, streaming, then how it ended. "skipped": not started
# (its server is cooling down after rate limits or failures).
LegStatus = Literal["pending", "queued", "running", "won", "done", "cancelled", "error", "skipped"]

# A run (an ask or a command): "interrupted" is a run the log shows started but never finished (a restart).
RunStatus = Literal["running", "done", "error", "cancelled", "interrupted"]

# An MCP server connection in the pool.
ServerState = Literal["idle", "starting", "ready", "dead", "closed"]

FINISHED_LEG_STATUSES: frozenset[LegStatus] = frozenset({"won", "done", "cancelled", "error", "skipped"})
