"""Named keys, and the line a session's user has typed so far (what the policy checks when a line ends).

The tracker follows plain typing, backspace, ``ctrl-c`` (abandons the line) and ``ctrl-u`` (erases it). Any other
control key or escape sequence — tab completion, arrows, history search, ``ctrl-o`` — changes the line in ways the
runner cannot see, so the line becomes *uncertain*, and the tracker treats the key itself as a point where the line
may run. A policy refuses uncertain lines whenever it has deny rules.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEYS", "TypedLine", "LineTracker", "key_bytes"]

KEYS: dict[str, bytes] = {
    "enter": b"\r",
    "tab": b"\t",
    "esc": b"\x1b",
    "backspace": b"\x7f",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "ctrl-c": b"\x03",
    "ctrl-d": b"\x04",
    "ctrl-z": b"\x1a",
    "ctrl-\\": b"\x1c",
    "ctrl-u": b"\x15",
    "ctrl-l": b"\x0c",
}


def key_bytes(names: list[str]) -> bytes:
    """Raises: KeyError naming the first unknown key."""
    return b"".join(KEYS[name.lower()] for name in names)


@dataclass(frozen=True, slots=True)
class TypedLine:
    text: str
    certain: bool


_LINE_ENDS = "\r\n"
_ERASE = "\x7f\x08"
_ABANDON = "\x03"  # ctrl-c: readline and the tty both drop the line
_KILL = "\x15"  # ctrl-u: erases the line when the cursor is at its end (always, while the line is certain)
_HARMLESS = "\x0c"  # ctrl-l: redraws


@dataclass(slots=True)
class LineTracker:
    text: str = ""
    certain: bool = True

    def preview(self, typed: str) -> list[TypedLine]:
        """The lines ``typed`` would complete (or put at risk), without changing the tracker."""
        copy = LineTracker(self.text, self.certain)
        return copy.feed(typed)

    def feed(self, typed: str) -> list[TypedLine]:
        done: list[TypedLine] = []
        for ch in typed:
            if ch in _LINE_ENDS:
                done.append(TypedLine(self.text, self.certain))
                self.text, self.certain = "", True
            elif ch in _ERASE:
                if self.certain:
                    self.text = self.text[:-1]
            elif ch in _ABANDON:
                self.text, self.certain = "", True
            elif ch in _KILL:
                if self.certain:
                    self.text = ""
            elif ch in _HARMLESS:
                continue
            elif ch == "\x04" and not self.text and self.certain:
                continue  # end of input on an empty line
            elif ch < " " or ch == "\x7f" or "\x80" <= ch < "\xa0":
                # Completion, history, cursor motion, ctrl-o/ctrl-j style accept keys: the line may now be anything
                # and may run right here.
                self.certain = False
                done.append(TypedLine(self.text, False))
            else:
                self.text += ch
        return done

    def reset(self) -> None:
        self.text, self.certain = "", True
