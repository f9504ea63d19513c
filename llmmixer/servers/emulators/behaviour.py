"""How an emulated vendor behaves for one request: timing, reply, and the failure to inject.

A behaviour is chosen per request: the next queued one-shot behaviour for that vendor if any, else the vendor's
configured default. Tests, bench and the demo set them through the control API (``/_emulator/...``).
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InjectedError", "Behaviour", "split_tokens", "DEFAULT_REPLY"]

DEFAULT_REPLY = "Hello from the emulator! 안녕하세요 👋🏽 — mixing models is fun. 🚀"


class InjectedError(BaseModel):
    """An HTTP error served instead of a stream (or, with ``after_tokens``, as an error event mid-stream)."""

    model_config = ConfigDict(extra="forbid")

    status: int = 500
    # None: the vendor module renders its real error body for ``status``/``type``.
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # A vendor error name for the body renderer: e.g. "overloaded_error", "insufficient_quota",
    # "context_length_exceeded", "prompt_too_long", "API_KEY_INVALID", "RESOURCE_EXHAUSTED".
    type: str | None = None
    message: str | None = None
    retry_after_s: float | None = None  # rendered as the vendor does: header, or Gemini RetryInfo


class Behaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = 0.0
    ttft_jitter_ms: float = Field(default=0.0, ge=0.0, description="the first token comes up to this much sooner or later")
    inter_token_ms: float = 0.0
    # Heavy tail: this fraction of requests waits slow_ttft_ms instead of ttft_ms.
    slow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_ttft_ms: float = 0.0
    reply: str = DEFAULT_REPLY
    tokens: int | None = Field(default=None, ge=1, description="split the reply into this many deltas")
    # Mirror the request's JSON Schema with a matching object instead of ``reply`` (structured output).
    reply_json: Any = None
    # Answer a structured-output request with ``reply`` as plain text anyway (a model that broke the format).
    ignore_schema: bool = False
    thinking: str | None = Field(default=None, description="reasoning text streamed before the reply")
    error: InjectedError | None = None
    error_after_tokens: int | None = Field(default=None, ge=0, description="send the error mid-stream after N deltas")
    hang: bool = False
    hang_after_tokens: int | None = Field(default=None, ge=0)
    reset: bool = False
    reset_after_tokens: int | None = Field(default=None, ge=0)
    # Cut every HTTP chunk inside a multi-byte UTF-8 sequence where there is one (clients must reassemble bytes).
    split_utf8: bool = True
    stop_reason: str | None = None
    input_tokens: int | None = None
    # A typed answer with varied, plausible values (a judge's scores and reason) instead of the smallest valid one.
    plausible: bool = False

    def first_token_delay_s(self, rng: random.Random) -> float:
        slow = self.slow_fraction > 0 and rng.random() < self.slow_fraction
        jitter = rng.uniform(-self.ttft_jitter_ms, self.ttft_jitter_ms) if self.ttft_jitter_ms else 0.0
        return max(0.0, (self.slow_ttft_ms if slow else self.ttft_ms) + jitter) / 1000


def split_tokens(text: str, count: int | None = None) -> list[str]:
    """Deltas the way a tokenizer would emit them: short pieces that cut through words and grapheme clusters.

    With ``count``, exactly that many non-empty pieces (fewer only if the text is shorter).
    """
    if not text:
        return []
    if count is None:
        size = 4
        return [text[i:i + size] for i in range(0, len(text), size)]
    count = max(1, min(count, len(text)))
    bounds = [round(i * len(text) / count) for i in range(count + 1)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
