"""The run service as its faces see it: the typed seam between the orchestrator and the HTTP API, the MCP server
and the CLI.

:class:`~llmmixer.orchestrator.runs.Runs` is the implementation; ``python -m llmmixer.orchestrator.web`` serves a
store alone with :class:`~llmmixer.orchestrator.web.__main__.NoRuns`, which refuses every call. The faces call only
what is written here, so neither probes the service with ``hasattr`` (as Starlette's ``types.py`` names the ASGI
seam once, and the MCP SDK's ``Transport`` is a small ``Protocol``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..servers.core.events import Event
    from .requests import RunRequest

__all__ = ["RunService"]


class RunService(Protocol):
    async def start(self, request: RunRequest) -> str:
        """Start the run ``request`` describes (an ask, a shell command on the PTY runner, coding agents); the run
        id, at once.

        Raises:
            InvalidInputError: an unknown model, mode or agent; unreadable images; not in a git repository.
            NotFoundError: an unknown conversation; an agent's CLI is not installed.
        """
        ...

    def check_id(self, run_id: Any) -> str:
        """``run_id`` when it is well formed.

        Raises:
            InvalidInputError: a malformed id.
        """
        ...

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        """The final result of a run that is over, else its state.

        Raises:
            NotFoundError: no such run (never started, or older than the store keeps).
        """
        ...

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the run to end; whether it did."""
        ...

    def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        """``(source, text)`` of every streamed piece of the run, from its start until it ends."""
        ...

    async def events(self, run_id: str, after: str | None, wait_s: float) -> list[Event]:
        """The run's stored events after the event id ``after`` (from its first when None); when none are there yet
        and the run goes on, the next ones, waiting up to ``wait_s``."""
        ...

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel the run (every leg and command it started); its snapshot afterwards."""
        ...

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        ...

    async def servers(self) -> list[dict[str, Any]]:
        """Each configured server's status."""
        ...

    def server_statuses(self) -> list[dict[str, Any]]:
        """What is known of each server now, without waiting for any (``GET /api/servers?wait=0``)."""
        ...
