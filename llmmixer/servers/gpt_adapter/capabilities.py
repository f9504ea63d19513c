"""What each OpenAI model accepts, and how ``reasoning`` maps to its effort control.

- Reasoning models (``gpt-5*``, ``o1``/``o3``/``o4``): ``reasoning.effort`` (Responses) / ``reasoning_effort``
  (Chat); they refuse ``temperature`` ("Unsupported parameter"), so it is dropped and the result says so. ``off``
  is effort ``minimal`` on gpt-5 (``none`` on gpt-5.1 and later); the o-series cannot stop reasoning.
- Other models (``gpt-4.1``, ``gpt-4o``, and whatever an OpenAI-compatible local server names): temperature yes,
  no reasoning control (a ``reasoning`` level is dropped, and the result says so).
- Images: PNG, JPEG, GIF and WebP, as ``input_image`` (Responses) or ``image_url`` (Chat) parts.
"""

from __future__ import annotations

from ..core.capabilities import CapabilityTable, ModelCaps, Reasoning

__all__ = ["TABLE", "effort"]

_REASONING = ModelCaps(temperature=False, reasoning=True, note="reasoning models take reasoning.effort instead")
_O_SERIES = ModelCaps(temperature=False, reasoning=True, reasoning_off=False,
                      note="reasoning models take reasoning.effort instead")
_CLASSIC = ModelCaps(temperature=True, reasoning=False)

TABLE = CapabilityTable([
    ("gpt-5", _REASONING), ("o1", _O_SERIES), ("o3", _O_SERIES), ("o4", _O_SERIES),
    ("gpt-5-chat", _CLASSIC),  # the chat-tuned gpt-5 does not reason
], default=_CLASSIC)

_NONE_FROM = ("gpt-5.1", "gpt-5.2", "gpt-5.3", "gpt-5.4", "gpt-5.5")


def effort(model: str, level: Reasoning) -> str:
    """The native effort for ``level`` on ``model``."""
    if level == "off":
        return "none" if model.startswith(_NONE_FROM) else "minimal"
    return level
