"""The adapter SDK: what a server package (bundled or a plugin) builds on, vendor-free.

``from llmmixer.servers.core import BaseAdapter, GenerateRequest, TextDelta, Completion, Usage, AuthError, ...``:
the names in ``__all__`` are the supported surface (tests/test_core_exports.py keeps it complete). The submodules
stay importable on their own; the adapter names load :mod:`.adapter` (pydantic, anyio) only when first used, so a
manifest or an error class costs nothing more than itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import errors as _errors
from .errors import *  # noqa: F403 - the whole error tree is part of the SDK
from .events import Event, EventType
from .manifest import EmulatorInfo, ServerManifest

if TYPE_CHECKING:
    from .adapter import (AdapterSettings, BaseAdapter, Completion, GenerateRequest, GenerateResult,
                          TextDelta, Usage, shielded_close)
    from .messages import ChatMessage, Part, ToolCall, ToolCallDelta, ToolChoice, ToolSpec
    from .mcp import adapter_main, build_adapter_server

_LAZY = {
    "AdapterSettings": ".adapter", "BaseAdapter": ".adapter", "ChatMessage": ".messages", "Completion": ".adapter",
    "GenerateRequest": ".adapter", "GenerateResult": ".adapter", "TextDelta": ".adapter", "Usage": ".adapter",
    "shielded_close": ".adapter", "adapter_main": ".mcp", "build_adapter_server": ".mcp",
    "Part": ".messages", "ToolCall": ".messages", "ToolCallDelta": ".messages", "ToolChoice": ".messages",
    "ToolSpec": ".messages",
}

__all__ = [*_LAZY, *_errors.__all__, "Event", "EventType", "EmulatorInfo", "ServerManifest"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
