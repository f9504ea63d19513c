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

Every wait is bounded (``servers/core/bounds.py``): a cooldown lasts at most ``max_wait_s`` (``settings.max_cooldown_s``,
at most and by default an hour) from when it is set or read back, whatever a vendor, the config or the file said. A file that is not the
JSON this module writes is set aside (renamed ``cooldowns.json.damaged``) with a warning, and the service starts
with no cooldowns; an entry that is damaged alone is dropped.
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

from ..servers.core.bounds import MAX_WAIT_S, bounded_seconds, finite_number
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
                 clock: Callable[[], float] = time.time, path: str | os.PathLike[str] | None = None,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.consecutive_failures = consecutive_failures
        self.max_wait_s = bounded_seconds(max_wait_s, "max_cooldown_s") or 0.0
        self.breaker_s = bounded_seconds(breaker_s, "breaker_s", self.max_wait_s) or 0.0
        self.clock = clock
        self.path = Path(path) if path is not None else None
        self._states: dict[str, _State] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self._set_aside(exc)
            return
        now = self.clock()
        for name, entry in raw.items():
            state = _state_from(entry, now, self.max_wait_s)
            if state is None:
                log.warning("dropping a damaged entry for %r in %s", name, self.path)
            else:
                self._states[str(name)] = state

    def _set_aside(self, exc: BaseException) -> None:
        assert self.path is not None
        aside = self.path.with_name(self.path.name + ".damaged")
        try:
            os.replace(self.path, aside)
        except OSError as error:
            log.warning("ignoring damaged cooldown file %s (%s); cannot move it aside: %s", self.path, exc, error)
            return
        log.warning("damaged cooldown file %s (%s) set aside as %s; starting with no cooldowns",
                    self.path, str(exc)[:200], aside)

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
        retry_after = bounded_seconds((error or {}).get("retry_after_s"), f"{server}'s retry-after", self.max_wait_s)
        if kind in WAIT_KINDS and retry_after:
            self._cool(state, retry_after, f"{kind.value}, retry after {retry_after:g} s")
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
        until = self.clock() + min(seconds, self.max_wait_s)
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


def _state_from(entry: Any, now: float, max_wait_s: float) -> _State | None:
    """One entry of the file, checked: a finite ``until`` at most ``max_wait_s`` ahead, a count, a short reason."""
    if not isinstance(entry, dict):
        return None
    until = finite_number(entry.get("until", 0.0))
    consecutive = entry.get("consecutive", 0)
    reason = entry.get("reason", "")
    if until is None or isinstance(consecutive, bool) or not isinstance(consecutive, int) or not isinstance(reason, str):
        return None
    if until > now + max_wait_s:
        log.warning("a cooldown in the file ends %s; clamped to %g s from now", "never" if until == float("inf")
                    else f"{until - now:.0f} s from now", max_wait_s)
        until = now + max_wait_s
    return _State(until=max(until, 0.0), reason=reason[:500], consecutive=max(0, min(consecutive, 1 << 20)))


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("llmmixer")) / "cooldowns.json"


def iso(ts: float) -> str:
    """UTC, to the millisecond: ``2026-12-01T21:40:05.123Z`` (years past 9999 read as 9999-12-31)."""
    ts = min(max(ts, 0.0), 253402300799.0)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
