"""Cooldowns and circuit breaking: a server that asked us to wait, or keeps failing, is left alone for a while.

- ``rate_limit``, ``quota`` or ``overloaded`` with a ``retry_after_s``: the server cools down for exactly that long.
- ``consecutive_failures`` ``server`` / ``unavailable`` / ``timeout`` / ``connection`` errors in a row (the circuit
  breaker): it cools down for ``breaker_s``.
- A success closes the circuit at once.

The mixer asks :meth:`Cooldowns.cooling_until` before it starts a leg; while another leg exists, a cooling server
is skipped (``status: "skipped"``, ``reason: "cooling down until ..."``) rather than called. ``all`` calls every
server regardless, and a run whose every server cools down still runs (a stale wait must not make a run
impossible). Times are wall-clock so that ``llmmixer servers`` and the dashboard can show them.

With a ``path``, the cooldowns live in a small JSON file as well (read at start, rewritten atomically on each
change), so one ``llmmixer ask`` after another honours the retry-after the previous one was given.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..servers.core.errors import ErrorKind

__all__ = ["Cooldowns", "WAIT_KINDS", "BREAKER_KINDS", "default_path"]

log = logging.getLogger("llmmixer.cooldown")

WAIT_KINDS = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.QUOTA, ErrorKind.OVERLOADED})
BREAKER_KINDS = frozenset({ErrorKind.SERVER, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION})


@dataclass
class _State:
    until: float = 0.0
    reason: str = ""
    consecutive: int = 0


class Cooldowns:
    def __init__(self, *, consecutive_failures: int = 3, breaker_s: float = 30.0,
                 clock: Callable[[], float] = time.time, path: str | os.PathLike[str] | None = None) -> None:
        self.consecutive_failures = consecutive_failures
        self.breaker_s = breaker_s
        self.clock = clock
        self.path = Path(path) if path is not None else None
        self._states: dict[str, _State] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._states = {name: _State(**state) for name, state in raw.items()}
        except (OSError, ValueError, TypeError) as exc:  # a damaged file only loses old cooldowns
            log.warning("ignoring unreadable cooldown file %s: %s", self.path, exc)

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({name: asdict(state) for name, state in self._states.items()}),
                           encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write cooldown file %s: %s", self.path, exc)

    def note_error(self, server: str, error: dict[str, Any] | None) -> None:
        state = self._states.setdefault(server, _State())
        try:
            kind = ErrorKind((error or {}).get("kind"))
        except ValueError:
            return
        retry_after = (error or {}).get("retry_after_s")
        if kind in WAIT_KINDS and isinstance(retry_after, (int, float)) and retry_after > 0:
            self._cool(state, float(retry_after), f"{kind.value}, retry after {retry_after:g} s")
        if kind in BREAKER_KINDS:
            state.consecutive += 1
            if state.consecutive >= self.consecutive_failures:
                self._cool(state, self.breaker_s, f"{state.consecutive} {kind.value} errors in a row")
        elif kind not in WAIT_KINDS:
            state.consecutive = 0  # a bad request says nothing about the server's health
        self._save()

    def note_success(self, server: str) -> None:
        state = self._states.get(server)
        if state is not None and (state.consecutive or state.until):
            state.consecutive = 0
            state.until, state.reason = 0.0, ""
            self._save()

    def _cool(self, state: _State, seconds: float, reason: str) -> None:
        until = self.clock() + seconds
        if until > state.until:
            state.until, state.reason = until, reason

    def cooling_until(self, server: str) -> float | None:
        """The wall-clock time the server's cooldown ends, or None when it may be called now."""
        state = self._states.get(server)
        if state is None or state.until <= self.clock():
            return None
        return state.until

    def cooling(self) -> int:
        """How many servers cool down now."""
        return sum(1 for server in self._states if self.cooling_until(server) is not None)

    def describe(self, server: str) -> dict[str, Any]:
        """``{"cooling_until": iso | None, "cooldown_reason", "consecutive_failures"}`` for status listings."""
        state = self._states.get(server) or _State()
        until = self.cooling_until(server)
        return {"cooling_until": iso(until) if until else None, "cooldown_reason": state.reason if until else None,
                "consecutive_failures": state.consecutive}

    def skip_reason(self, server: str) -> str | None:
        until = self.cooling_until(server)
        if until is None:
            return None
        return f"cooling down until {iso(until)} ({self._states[server].reason})"


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("llmmixer")) / "cooldowns.json"


def iso(ts: float) -> str:
    """UTC, to the millisecond: ``2026-12-01T21:40:05.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
