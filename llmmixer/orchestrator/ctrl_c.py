"""Ctrl-C while a run is on screen: stop the run, keep what it streamed.

The first Ctrl-C cancels the run being followed (each leg keeps its text and figures, and the view ends with every
panel still on screen); the program then says what was cancelled and what it cost. While the watcher is active,
SIGINT goes to the event loop instead of raising ``KeyboardInterrupt`` wherever the main thread happens to be; after
the first press the default handler is back, so a second Ctrl-C leaves at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["CtrlC", "ctrl_c_cancels", "interrupted_line", "read_line", "no_echoctl"]


@dataclass
class CtrlC:
    pressed: bool = False


def _can_watch() -> bool:
    return threading.current_thread() is threading.main_thread()


@asynccontextmanager
async def ctrl_c_cancels(cancel: Callable[[], Awaitable[Any]]) -> AsyncIterator[CtrlC]:
    """While inside, the first Ctrl-C calls ``cancel`` (once) and sets ``pressed``; the body goes on, so it sees the
    run end as cancelled and can print it."""
    state = CtrlC()
    if not _can_watch():  # signals reach only the main thread
        yield state
        return
    async with anyio.create_task_group() as tg:
        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    state.pressed = True
                    break
            # Out of the receiver: the default handler is back, so a second Ctrl-C raises KeyboardInterrupt.
            await cancel()

        tg.start_soon(watch)
        try:
            yield state
        finally:
            if not state.pressed:
                tg.cancel_scope.cancel()


@contextmanager
def no_echoctl(fd: int = 0) -> Iterator[None]:
    """While a live view is drawn: the terminal does not echo ``^C``, which would shift the view by a line and leave a
    stale border behind when the view is replaced."""
    try:
        import termios

        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError):  # not a terminal (or no termios): nothing to do
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHOCTL
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


async def read_line(prompt: str, read: Callable[[str], str | None]) -> str | None:
    """``read(prompt)`` in a daemon thread; None on end of input or on Ctrl-C (which leaves the thread blocked in its
    read, harmless: a daemon thread does not hold the process open)."""
    if not _can_watch():
        return read(prompt)
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    box: list[str | None] = []

    def work() -> None:
        try:
            box.append(read(prompt))
        except BaseException:  # noqa: BLE001 - any failure to read is the end of input
            box.append(None)
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except RuntimeError:
            pass  # the loop is gone: nobody waits for this line any more

    async with anyio.create_task_group() as tg:
        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    box.append(None)
                    done.set()
                    return

        tg.start_soon(watch)
        threading.Thread(target=work, name="llmmixer-read-line", daemon=True).start()
        await done.wait()
        tg.cancel_scope.cancel()
    return box[0]


def interrupted_line(final: dict[str, Any]) -> str:
    """What Ctrl-C cancelled and what the run cost: ``interrupted: cancelled claude (streaming), gpt; kept done:
    gemini; cost $0.000041 (estimated)``."""
    legs = final.get("legs") or []
    cancelled = [leg for leg in legs if leg.get("status") in ("cancelled", "interrupted", "running", "streaming",
                                                                 "starting", "queued")]
    parts = []
    if cancelled:
        names = []
        for leg in cancelled:
            chars = len(leg.get("text") or "")
            names.append(f"{leg.get('source')} ({chars} chars kept)" if chars else str(leg.get("source")))
        parts.append("cancelled " + ", ".join(names))
    else:
        parts.append("cancelled the run")
    finished = [str(leg.get("source")) for leg in legs if leg.get("status") in ("done", "won")]
    if finished:
        parts.append("finished before: " + ", ".join(finished))
    cost = final.get("total_cost_usd")
    if cost is not None:
        estimated = any((leg.get("usage") or {}).get("estimated") for leg in legs)
        partial = final.get("total_cost_partial")
        note = " (estimated from the text streamed)" if estimated else ""
        note += " (some legs have no price)" if partial else ""
        parts.append(f"cost ${cost:.6f}{note}")
    else:
        parts.append("cost unknown (no priced leg)")
    return "interrupted: " + "; ".join(parts)
