"""The run results: one typed model per leg and per run kind, serialized once at each edge.

A leg's outcome is a :class:`LegResult`; a run's is a :class:`RunResult`, discriminated by ``kind``:
:class:`AskResult` (the mixer's legs, winner and costs), :class:`CommandResult` (the PTY runner's exit) and
:class:`AgentResult` (coding agents). The mixer and the run kinds build them; :class:`~.runs.Runs` holds them, and
:meth:`WireModel.wire` writes the one dict each edge sends on: the snapshot (HTTP API, MCP result, terminal), the
``leg.done`` / ``run.done`` events (dashboard, SSE) and the run log (store).

The wire form holds the fields a result was given, in declaration order, so it is what the dicts built by hand
were, byte for byte: a leg always says ``model``, ``text``, ``usage``...; ``server``, ``role``, ``round``, ``data``
appear only when they apply. ``kind`` travels at the top of a snapshot (one place), not inside the result.

Adding a leg field is one declaration on :class:`LegResult` (and the line in ``mixer.Leg.result`` that fills it)
plus its renderers: see CONTRIBUTING.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = ["WireModel", "Usage", "LegResult", "AskResult", "CommandResult", "AgentResult", "RunResult",
           "ErrorWire", "RUN_RESULT"]

# A classified error as the shared tree writes it (LLMMixerError.to_dict()["error"]): kind, message, vendor...
ErrorWire = dict[str, Any]


class WireModel(BaseModel):
    """A result with one serialization: :meth:`wire`."""

    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The dict every edge sends and stores: the fields given, in declaration order."""
        return self.model_dump(exclude_unset=True)


class Usage(WireModel):
    """Tokens a leg used, as the adapter reports them (``estimated`` for a cancelled leg, counted here)."""

    model_config = ConfigDict(extra="allow")  # an adapter may report more (cache tokens...): kept as it is

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated: bool | None = None


class LegResult(WireModel):
    """One leg's outcome: a ``generate`` call on one model server."""

    source: str
    status: str = Field(description="won|done|cancelled|error|skipped")
    model: str | None = None
    text: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    stop_reason: str | None = None
    error: ErrorWire | None = None
    priced: bool | None = None  # whether cost_usd covers the tokens used (absent for a leg that used none)
    data: Any = None  # the typed answer, when response_schema was given
    server: str | None = None  # the server called, when it is not ``source`` (aggregator, judge, a later round)
    role: str | None = None  # proposer | aggregator | judge | recovery
    round: int | None = None
    reason: str | None = None  # why it was skipped or left out
    dropped: list[dict[str, Any]] | None = None  # parameters the model refuses, not sent
    tool_calls: list[dict[str, Any]] | None = None  # the tools the reply calls ({id, name, arguments})


class AskResult(WireModel):
    """An ask's outcome: every leg, the winner, costs; the combining modes' synthesis or verdict."""

    kind: Literal["ask"] = Field(default="ask", exclude=True)
    mode: str | None = None
    winner: str | None = None
    legs: list[LegResult] = Field(default_factory=list)
    total_cost_usd: float | None = None
    total_cost_partial: bool | None = None
    latency_ms: float | None = None
    synthesis: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    recovery: list[dict[str, Any]] | None = None
    data: Any = None  # the winner's typed answer
    error: ErrorWire | None = None
    message: str | None = None
    cost_cap: dict[str, Any] | None = None  # a run with max_cost_usd: its cap and what it spent (costcap.py)
    conversation_id: str | None = None
    timeline: dict[str, Any] | None = None


class CommandResult(WireModel):
    """A shell command's outcome, as the PTY runner's ``run`` tool reports it."""

    model_config = ConfigDict(extra="allow")  # the runner's own fields (sandbox facts...) pass through

    kind: Literal["command"] = Field(default="command", exclude=True)
    exit_code: int | None = None
    output: str | None = None
    truncated: bool | None = None
    output_bytes: int | None = None  # bytes the command wrote; ``output`` holds the last ones when ``truncated``
    timed_out: bool | None = None
    duration_ms: float | None = None
    backend: str | None = None
    sandbox: str | None = None
    plain: str | None = None
    message: str | None = None
    error: ErrorWire | None = None


class AgentResult(WireModel):
    """Coding agents' outcome: the winner and its diff, every leg (see ``agents.race``)."""

    model_config = ConfigDict(extra="allow")  # the agent run's own report

    kind: Literal["agent"] = Field(default="agent", exclude=True)
    mode: str | None = None
    task: str | None = None
    check: str | None = None
    repo: str | None = None
    winner: str | None = None
    diff: str | None = None
    applied: bool | None = None
    kept: bool | None = None  # every leg kept as a branch llmmixer/<run>/<agent>
    pick: str | None = None  # first | best
    verdict: dict[str, Any] | None = None  # --pick best: the judge's, its letters mapped back to the agents
    base: str | None = None  # head | worktree: what the legs started from
    cost_cap: dict[str, Any] | None = None  # a run with max_cost_usd: its cap and what it spent (costcap.py)
    continued: str | None = None  # the run whose kept legs this one continued (agent continue)
    legs: list[dict[str, Any]] = Field(default_factory=list)
    total_cost_usd: float | None = None
    duration_ms: float | None = None
    error: ErrorWire | None = None
    message: str | None = None


RunResult = Annotated[AskResult | CommandResult | AgentResult, Field(discriminator="kind")]
# A RunResult from its fields and ``kind`` (``RUN_RESULT.validate_python({"kind": "ask", ...})``).
RUN_RESULT: TypeAdapter[RunResult] = TypeAdapter(RunResult)
