"""Child output: a bounded byte buffer addressed by absolute offsets, and its text forms.

Offsets count bytes since the child started, so a reader that falls behind learns exactly how much the buffer
dropped (``dropped``) instead of silently reading a hole. Text is decoded with ``errors="replace"``: a child that
writes binary garbage gets U+FFFD in the output, never an exception in the server. A read that would end in the
middle of a UTF-8 sequence stops before it, so the next read starts on a character boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OutputBuffer", "Slice", "decode", "plain_text", "complete_utf8_end"]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL | ST), other two-byte escapes, and stray C0 controls a viewer would
# not show. Carriage returns before newlines are dropped so the plain form reads like a file.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_]"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
)


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def plain_text(text: str) -> str:
    """``text`` without terminal escape sequences and with ``\\r\\n`` line ends turned into ``\\n``."""
    return _ANSI.sub("", text).replace("\r\n", "\n")


def complete_utf8_end(data: bytes | bytearray | memoryview) -> int:
    """The length of the longest prefix of ``data`` that does not end inside a UTF-8 sequence."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n  # ASCII: the end is a boundary
        if byte >= 0xC0:  # lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n if back >= need else n - back
    return n  # only continuation bytes: invalid anyway, let the decoder replace them


@dataclass(frozen=True, slots=True)
class Slice:
    data: bytes
    start: int  # offset of data[0]
    end: int  # offset after the last byte returned; pass it back as ``since``
    dropped: int  # bytes between the requested offset and ``start`` that the buffer no longer holds


class OutputBuffer:
    """The last ``limit`` bytes a child wrote, addressed by absolute offsets."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self._data = bytearray()
        self._start = 0

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._start + len(self._data)

    def append(self, chunk: bytes) -> None:
        self._data += chunk
        excess = len(self._data) - self.limit
        if excess > 0:
            del self._data[:excess]  # CPython moves the start pointer: amortised O(1) for front deletes
            self._start += excess

    def since(self, offset: int, *, final: bool = False, limit: int | None = None) -> Slice:
        """Everything from ``offset`` on (clamped to what is held), at most ``limit`` bytes; stops short of a split
        character unless ``final`` (the child is done and no more bytes will come) and nothing was cut. A slice
        whose start the buffer no longer holds begins on the first character it does hold, so it decodes to the
        same text as the end of a decode from offset 0."""
        offset = max(0, min(offset, self.end))
        dropped = max(0, self._start - offset)
        begin = max(offset, self._start)
        if dropped:  # start on a character: the bytes of one the buffer cut count as dropped too
            while begin < self.end and begin - self._start < 3 and 0x80 <= self._data[begin - self._start] < 0xC0:
                begin += 1
            dropped = begin - offset
        stop = len(self._data) if limit is None else min(len(self._data), begin - self._start + limit)
        if stop < len(self._data):
            final = False
        with memoryview(self._data) as whole, whole[begin - self._start:stop] as view:
            length = len(view) if final else complete_utf8_end(view)
            data = bytes(view[:length])
        return Slice(data=data, start=begin, end=begin + length, dropped=dropped)

    def tail_text(self, max_bytes: int) -> str:
        return decode(bytes(self._data[-max_bytes:]))
