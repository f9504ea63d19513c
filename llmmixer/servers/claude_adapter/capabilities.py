"""What each Claude model accepts, and how ``reasoning`` maps to its thinking control.

- Sampling parameters: API version 2026-10-21 (the installed SDK's) refuses ``temperature`` at any value, on every
  model, so it is never sent (and the result says so).
- Thinking: models before 4.6 take a manual budget, ``thinking: {"type": "enabled", "budget_tokens": N}`` (at
  least 1024, and less than ``max_tokens``: the budget is added on top of the answer's ``max_tokens``); 4.6 models
  think adaptively, ``thinking: {"type": "adaptive"}`` with ``output_config.effort``. ``off`` is
  ``{"type": "disabled"}`` on both.
- Images: PNG, JPEG, GIF and WebP on every model, as base64 or URL ``image`` blocks.
"""

from __future__ import annotations

from ..core.capabilities import CapabilityTable, ModelCaps

__all__ = ["TABLE", "THINKING_BUDGETS", "adaptive_thinking"]

NO_SAMPLING = "API version 2026-10-21 refuses sampling parameters"
_CLAUDE = ModelCaps(temperature=False, reasoning=True, note=NO_SAMPLING)
_OLD = ModelCaps(temperature=False, reasoning=False, note=NO_SAMPLING + "; no extended thinking before Claude 3.7")

TABLE = CapabilityTable([("claude-3-5", _OLD), ("claude-3-haiku", _OLD), ("claude-3-opus", _OLD)], default=_CLAUDE)

THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
_ADAPTIVE = ("claude-opus-4-6", "claude-sonnet-4-6")


def adaptive_thinking(model: str) -> bool:
    """Whether ``model`` thinks adaptively (effort) rather than to a token budget."""
    return model.startswith(_ADAPTIVE)
