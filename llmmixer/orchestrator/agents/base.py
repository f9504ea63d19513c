"""What every coding CLI adapter provides: its HOME seed, its command line, and a reader for its JSON stream.

An adapter holds one CLI's quirks and nothing else: which variables point it at an endpoint, which files turn off
its first-run prompts and telemetry, which flags make it non-interactive with its own approvals bypassed (the leg
runs inside the runner's sandbox instead), and how each line of its structured output maps to run events.
:class:`StreamReport` collects what the final result needs: the last message, usage and cost as the CLI reported
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...servers.core import pricing

__all__ = ["AgentCLI", "StreamReport", "AgentEventData", "clip", "small"]

AgentEventData = tuple[str, dict[str, Any]]  # (event type, data)
CLIP = 4000  # characters of a tool's output or a command kept in one event


def clip(text: Any, limit: int = CLIP) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


def small(value: Any) -> Any:
    """``value`` as it is when its JSON is short, else its JSON clipped to a string."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text) <= CLIP else clip(text)


@dataclass
class StreamReport:
    """What the CLI's own JSON said about the run, as far as it got."""

    model: str | None = None
    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    cost_reported: bool = False  # True: the CLI priced it itself; False: our price table did (or nothing)
    finished: bool = False  # the CLI sent its final result line
    error: str | None = None  # the CLI reported a failure
    session_id: str | None = None

    def add_usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        for key, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, int):
                self.usage[key] = self.usage.get(key, 0) + value

    @property
    def spent_usd(self) -> float:
        """What the run has cost so far as far as the CLI has said: its own cost, else its usage at our prices."""
        if self.cost_reported and self.cost_usd is not None:
            return self.cost_usd
        return self._priced() or 0.0

    def _priced(self) -> float | None:
        if not self.model or not self.usage:
            return None
        return pricing.cost_usd(self.model, self.usage.get("input_tokens"), self.usage.get("output_tokens"))

    def price(self) -> None:
        """Our own price for the usage, when the CLI does not report a cost."""
        if not self.cost_reported and self.model and self.usage:
            self.cost_usd = self._priced()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "text": self.text, "usage": self.usage or None, "cost_usd": self.cost_usd,
                "finished": self.finished, "error": self.error}


class AgentCLI:
    """One coding CLI. Subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]  # the agent's name in --agents (claude-code, codex, gemini-cli)
    binary: ClassVar[str]  # the command npm installs
    npm_package: ClassVar[str]
    key_vars: ClassVar[tuple[str, ...]]  # secrets the CLI reads, the first one set is used
    base_url_var: ClassVar[str]  # the endpoint variable the orchestrator passes on when it is set
    gateway_path: ClassVar[str] = ""  # the CLI's base URL under `llmmixer serve` (orchestrator/gateway)
    default_model: ClassVar[str | None] = None

    def home_files(self, home: Path, *, base_url: str | None, model: str | None) -> dict[str, str]:
        """Files to write under the fresh HOME (relative path -> content)."""
        raise NotImplementedError

    def environment(self, home: Path, *, base_url: str | None) -> dict[str, str]:
        """Variables the CLI needs that are not secrets."""
        raise NotImplementedError

    def argv(self, task: str, *, model: str | None, extra: list[str], resume: str | None = None) -> list[str]:
        """Arguments after the binary: the structured, non-interactive mode with approvals bypassed; ``resume``
        continues that session of the CLI's (kept in its HOME) with ``task`` as the next message."""
        raise NotImplementedError

    def read(self, line: dict[str, Any], report: StreamReport) -> list[AgentEventData]:
        """Run events for one line of the CLI's JSON stream; updates ``report``."""
        raise NotImplementedError

    def finish(self, report: StreamReport) -> None:
        report.price()
