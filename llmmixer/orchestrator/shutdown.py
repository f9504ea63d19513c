"""SIGTERM and SIGINT for the long-running commands (``llmmixer serve``, ``llmmixer mcp``): finish, don't vanish.

On the first signal, :func:`on_signal` ends every run in flight as ``interrupted`` (each leg keeps what it had
produced), waits until that is in the event store, and only then sets ``stop``, which the caller turns into
stopping its server. A second signal while that is going on stops at once.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import anyio

__all__ = ["on_signal", "SIGNALS"]

log = logging.getLogger("llmmixer.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def on_signal(runs: Any, stop: anyio.Event, *, timeout_s: float = 10.0) -> None:
    """Wait for SIGTERM/SIGINT, then interrupt ``runs`` (bounded by ``timeout_s``) and set ``stop``."""
    with anyio.open_signal_receiver(*SIGNALS) as signals:
        async for signum in signals:
            # Said only when there is something to interrupt: a host sends SIGINT at every exit, idle or not.
            log.debug("%s: interrupting the runs in flight, then stopping", signal.Signals(signum).name)
            break
        async with anyio.create_task_group() as tg:
            async def second_signal() -> None:
                async for _ in signals:
                    log.warning("second signal: stopping now")
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(second_signal)
            interrupted = await runs.interrupt(timeout_s)
            if interrupted:
                log.warning("%s: %d runs ended as interrupted", signal.Signals(signum).name, interrupted)
            tg.cancel_scope.cancel()
    stop.set()
