"""What ``generate`` answers: one pydantic model, :class:`GenerateResult`, from the adapter to the orchestrator.

The adapter builds it once the vendor's reply is complete; the MCP tool declares it as its output schema (the SDK's
rule: the return type is the schema) and sends :meth:`GenerateResult.wire`; the orchestrator reads the tool's result
back with :meth:`GenerateResult.from_wire`. A new field is one declaration here (and the line that fills it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .capabilities import Dropped
from .messages import ToolCall

__all__ = ["Usage", "Dropped", "GenerateResult"]


class Usage(BaseModel):
    """Tokens of one reply, as the vendor counted them (None where it did not say)."""

    input_tokens: int | None = None
    output_tokens: int | None = None  # includes reasoning tokens: every vendor bills them as output
    reasoning_tokens: int | None = Field(default=None, description="the part of output_tokens spent reasoning")

    def to_dict(self) -> dict[str, int | None]:
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.reasoning_tokens is not None:
            out["reasoning_tokens"] = self.reasoning_tokens
        return out


class GenerateResult(BaseModel):
    """The whole reply: text, tool calls, usage, cost and timings."""

    text: str
    model: str
    stop_reason: str | None
    usage: Usage
    cost_usd: float | None
    ttft_ms: float | None
    latency_ms: float
    data: Any = Field(default=None, description="the parsed JSON reply, present when response_schema was given")
    tool_calls: list[ToolCall] | None = Field(default=None, description="the tools the reply calls "
                                              "(stop_reason tool_use)")
    dropped: list[Dropped] | None = Field(default=None, description="parameters the model refuses, not sent")

    @property
    def has_data(self) -> bool:
        """Whether ``data`` was given (a structured reply), which a ``data`` of None alone cannot say."""
        return "data" in self.model_fields_set

    def wire(self) -> dict[str, Any]:
        """The tool's structured result: ``data``, ``dropped`` and ``tool_calls`` only when there are some."""
        out: dict[str, Any] = {
            "text": self.text, "model": self.model, "stop_reason": self.stop_reason, "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd, "ttft_ms": self.ttft_ms, "latency_ms": self.latency_ms,
        }
        if self.has_data:
            out["data"] = self.data
        if self.dropped:
            out["dropped"] = [item.model_dump() for item in self.dropped]
        if self.tool_calls:
            out["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        return out

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> GenerateResult:
        """A ``generate`` result as a server sent it (the inverse of :meth:`wire`).

        Raises:
            pydantic.ValidationError: it is not one.
        """
        return cls.model_validate(payload)
