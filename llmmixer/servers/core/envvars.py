"""Numbers read from the environment, with a one-line usage error instead of a traceback when they are wrong.

``LLMMIXER_MAX_RETRIES=abc llmmixer-claude`` prints ``llmmixer-claude: error: LLMMIXER_MAX_RETRIES must be an
integer >= 0, got 'abc'`` and exits 2 (a usage error), before anything starts.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["EnvError", "ADAPTER_NUMBERS", "env_int", "env_float", "env_number", "adapter_numbers", "exit_usage"]

N = TypeVar("N", int, float)


class EnvError(ValueError):
    """An environment variable that does not hold the number it must."""


def env_number(name: str, default: N, convert: Callable[[str], N], *, minimum: N | None = None,
               positive: bool = False, environ: Mapping[str, str] | None = None) -> N:
    """``$name`` converted, or ``default`` when unset or empty.

    Raises:
        EnvError: not a number of that type, not finite, or out of range; the message names the variable.
    """
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    what = "an integer" if convert is int else "a number"
    bound = " > 0" if positive else (f" >= {minimum}" if minimum is not None else "")
    try:
        value = convert(raw)
    except ValueError:
        raise EnvError(f"{name} must be {what}{bound}, got {raw[:40]!r}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or (positive and value <= 0) or (
            minimum is not None and value < minimum):
        raise EnvError(f"{name} must be {what}{bound}, got {raw[:40]!r}")
    return value


def env_int(name: str, default: int, **limits: int | bool) -> int:
    return env_number(name, default, int, **limits)  # type: ignore[arg-type]


def env_float(name: str, default: float, **limits: float | bool) -> float:
    return env_number(name, default, float, **limits)  # type: ignore[arg-type]


def exit_usage(error: Exception, prog: str | None = None) -> SystemExit:
    """Print ``prog: error: message`` on stderr; return the ``SystemExit(2)`` to raise."""
    prog = prog or os.path.basename(sys.argv[0] or "llmmixer")
    sys.stderr.write(f"{prog}: error: {error}\n")
    return SystemExit(2)


# The numeric settings every adapter server reads, with their defaults and limits: one table, read by the
# adapters (their flag defaults) and by the orchestrator (which checks them once before launching any child).
ADAPTER_NUMBERS: dict[str, tuple[Callable[[str], int] | Callable[[str], float], int | float, dict[str, Any]]] = {
    "LLMMIXER_MAX_RETRIES": (int, 2, {"minimum": 0}),
    "LLMMIXER_TIMEOUT_S": (float, 60.0, {"positive": True}),
    "LLMMIXER_MAX_PROMPT_BYTES": (int, 1_000_000, {"positive": True}),
}


def adapter_numbers(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every :data:`ADAPTER_NUMBERS` value from the environment (or its default).

    Raises:
        EnvError: the first one that is malformed.
    """
    return {name: env_number(name, default, convert, environ=environ, **limits)
            for name, (convert, default, limits) in ADAPTER_NUMBERS.items()}
