"""The GPT adapter's own flag, vendor-free: the server parses it before the OpenAI SDK is imported."""

from __future__ import annotations

import argparse
from typing import Literal

__all__ = ["API_STYLES", "ENV_API_STYLE", "ApiStyle", "add_arguments", "api_style"]

ApiStyle = Literal["responses", "chat"]
API_STYLES: tuple[ApiStyle, ...] = ("responses", "chat")
ENV_API_STYLE = "OPENAI_API_STYLE"


def api_style(value: str) -> ApiStyle:
    style = value.strip().lower()
    if style not in API_STYLES:
        raise ValueError(f"{ENV_API_STYLE} / --api must be one of {', '.join(API_STYLES)}, not {value!r}")
    return style


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("openai")
    group.add_argument("--api", choices=API_STYLES, default=None,
                       help=f"responses (default) or chat, for OpenAI-compatible local servers (env {ENV_API_STYLE})")
