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
    from .mixer import MixOptions

__all__ = ["RunService"]


class RunService(Protocol):
    async def start_ask(self, prompt: str, models: list[str] | str | None = None, mode: str | None = None,
                        system: str | None = None, *, max_tokens: int | None = None,
                        temperature: float | None = None, response_schema: dict[str, Any] | None = None,
                        model_for: dict[str, str] | None = None, conversation_id: str | None = None,
                        reasoning: str | None = None, images: list[dict[str, Any]] | None = None,
                        options: MixOptions | None = None, messages: list[dict[str, Any]] | None = None,
                        tools: list[dict[str, Any]] | None = None, tool_choice: Any = None) -> str:
        """Start one prompt across the models; the run id, at once. ``options``: the combining modes' settings;
        ``messages``, ``tools``, ``tool_choice``: the normalized conversation and tools (servers/core/messages.py).

        Raises:
            InvalidInputError: an empty prompt, an unknown model or mode.
        """
        ...

    async def start_command(self, command: str, cwd: str | None = None, timeout_s: float | None = None) -> str:
        """Start a shell command on the PTY runner; the run id, at once."""
        ...

    async def start_agents(self, request: Any) -> str:
        """Start coding agents on a task (an ``agents.AgentRequest``); the run id, at once.

        Raises:
            InvalidInputError: an empty task or check, an unknown agent or mode, not in a git repository.
            NotFoundError: an agent's CLI is not installed.
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
