"""A server-side virtual terminal per PTY session: what a person would see on the screen right now.

Coding agents' TUIs (Claude Code, Codex, Gemini CLI) draw with cursor moves, not text streams: they paint spaces
by moving the cursor, redraw lines in place and clear regions. Stripping escape sequences from their output glues
words together ("Hello fromtheemulator!") and keeps every stale frame. A pyte screen plays the output back the way a
terminal would, so ``read(screen=true)`` returns the rendered rows and ``auto_respond`` patterns match what is
actually shown.

Like a real terminal, it answers the program's terminal queries (cursor position, device status and attributes):
Codex blocks at start-up reading the answer to its cursor-position query, and without one it sits in ``read`` on the
terminal, which would look like waiting for the user. The answers go back to the program as its input.

The screen also tells input-wait detection whether anything *visible* changed since the last input: a TUI that is
still starting up may have sent escape sequences (mode switches, a hidden cursor) but has drawn nothing yet.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pyte

__all__ = ["VirtualScreen"]

log = logging.getLogger("llmmixer.pty.screen")

# Queries pyte does not answer, and what an xterm-like terminal says: the background colour (OSC 11), the terminal's
# name and version (XTVERSION), the kitty keyboard protocol flags (none). TUIs wait for these at start-up.
_QUERIES: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    (re.compile(rb"\x1b\]11;\?(?:\x07|\x1b\\)"), b"\x1b]11;rgb:0000/0000/0000\x1b\\"),
    (re.compile(rb"\x1b\[>0?q"), b"\x1bP>|llmmixer-pty(1)\x1b\\"),
    (re.compile(rb"\x1b\[\?u"), b"\x1b[?0u"),
)


class _AnsweringScreen(pyte.Screen):
    """pyte's screen, collecting its answers to terminal queries, tolerant of private-mode variants it lacks."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__(cols, rows)
        self.answers: list[str] = []

    def write_process_input(self, data: str) -> None:
        self.answers.append(data)

    def select_graphic_rendition(self, *attrs: int, private: bool = False, **_: Any) -> None:
        if not private:  # CSI > 4 ; 2 m (xterm modifyOtherKeys) and friends are not colours
            super().select_graphic_rendition(*attrs)

    def report_device_status(self, mode: int, **kwargs: Any) -> None:
        super().report_device_status(mode)


class VirtualScreen:
    """The rendered ``cols`` x ``rows`` screen of a session (pyte), fed with the session's raw output."""

    def __init__(self, cols: int, rows: int) -> None:
        self._screen = _AnsweringScreen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self._last_text = ""
        self.changed_since_mark = False  # something visible changed since :meth:`mark`

    def feed(self, data: bytes) -> bytes:
        """Play ``data`` on the screen; returns the terminal's answers to queries in it (to send to the program)."""
        try:
            self._stream.feed(data)
        except Exception:  # noqa: BLE001 - a sequence pyte cannot play must never end the session
            log.debug("screen could not play %d bytes", len(data), exc_info=True)
        # In the order they were asked: ours (scanned from the raw bytes) first, then pyte's.
        found = sorted((m.start(), reply) for pattern, reply in _QUERIES for m in pattern.finditer(data))
        answers = b"".join(reply for _, reply in found) + "".join(self._screen.answers).encode()
        self._screen.answers.clear()
        if self._screen.dirty:
            self._screen.dirty.clear()
            text = self.text()
            if text != self._last_text:
                self._last_text = text
                self.changed_since_mark = bool(text.strip())
        return answers

    def mark(self) -> None:
        """Input was sent: from now on, only a new visible change counts."""
        self.changed_since_mark = False

    def text(self) -> str:
        """The rendered screen: one line per row, trailing blanks trimmed, trailing empty rows dropped."""
        return "\n".join(line.rstrip() for line in self._screen.display).rstrip("\n")

    def resize(self, cols: int, rows: int) -> None:
        self._screen.resize(rows, cols)

    @property
    def cursor(self) -> tuple[int, int]:
        """``(row, column)`` of the cursor, from 0."""
        return self._screen.cursor.y, self._screen.cursor.x
