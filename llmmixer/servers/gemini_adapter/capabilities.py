"""What each Gemini model accepts, and how ``reasoning`` maps to its thinking control.

- Gemini 2.5: ``thinking_config.thinking_budget`` (tokens). ``off`` is budget 0, which Flash and Flash-Lite take;
  2.5 Pro only works in thinking mode, so ``off`` is dropped there (the result says so).
- Gemini 3: ``thinking_config.thinking_level`` (``low`` | ``high``; ``medium`` is sent as ``high``); it cannot
  turn thinking off.
- Gemini 2.0 and older: no thinking (a level is dropped).
- Images: PNG, JPEG, WebP (and HEIC/HEIF, which the other vendors refuse); no GIF. Base64 images go as
  ``inline_data`` parts, URLs as ``file_data`` parts.
"""

from __future__ import annotations

from typing import Any

from ..core.capabilities import CapabilityTable, ModelCaps, Reasoning

__all__ = ["TABLE", "thinking_config"]

_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
_FLASH = ModelCaps(reasoning=True, image_types=_TYPES)
_PRO = ModelCaps(reasoning=True, reasoning_off=False, image_types=_TYPES)
_NO_THINKING = ModelCaps(reasoning=False, image_types=_TYPES, note="thinking arrived with Gemini 2.5")

TABLE = CapabilityTable([
    ("gemini-2.5-pro", _PRO), ("gemini-2.5-flash", _FLASH), ("gemini-3", _PRO),
    ("gemini-2.0", _NO_THINKING), ("gemini-1.5", _NO_THINKING),
], default=_FLASH)

_BUDGETS = {"off": 0, "low": 1024, "medium": 8192, "high": 24576}


def thinking_config(model: str, level: Reasoning) -> dict[str, Any]:
    """The native ``thinking_config`` for ``level`` on ``model``."""
    if model.removeprefix("models/").startswith("gemini-3"):
        return {"thinking_level": "low" if level == "low" else "high"}
    return {"thinking_budget": _BUDGETS[level]}
