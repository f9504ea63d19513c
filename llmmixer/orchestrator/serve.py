"""``llmmixer serve``: the web app (HTTP API, SSE events, dashboard) over one Runs service and one event store."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["serve_web"]


def serve_web(*, host: str, port: int, store_url: str | None, config_path: str | None,
              allowed_hosts: Sequence[str] = ()) -> int:
    import anyio

    from ..servers.core.errors import LLMMixerError
    from ..servers.core.security import TOKEN_ENV, BindRefused, check_bind
    from .config import load_config
    from .runs import Runs
    from .shutdown import on_signal
    from .stores import open_store
    from .web.app import serve

    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
    except BindRefused as refused:
        sys.stderr.write(f"llmmixer serve: {refused}\n")
        return 2
    try:
        config = load_config(config_path)
        store = open_store(store_url or config.settings.store)
    except LLMMixerError as error:
        sys.stderr.write(f"llmmixer serve: {error.message}\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def announce(url: str) -> None:
        sys.stdout.write(f"LLMMixer dashboard on {url}  (store {store.url}; Ctrl-C stops)\n")
        sys.stdout.flush()

    async def run() -> None:
        try:
            await store.open()  # a store that cannot be opened at all is a usage error, said before serving
        except LLMMixerError as error:
            raise _Refused(error.message) from error
        async with Runs(config, store) as runs:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                # SIGTERM/SIGINT: the runs in flight end as interrupted and are stored, then the web server stops
                # (cutting its open event streams), and only then does Runs close the store.
                tg.start_soon(on_signal, runs, stop)
                tg.start_soon(start_servers, runs)
                await serve(runs, store, host=host, port=port, token=token, allowed_hosts=allowed_hosts,
                            shutdown=stop, on_ready=announce)
                tg.cancel_scope.cancel()

    try:
        anyio.run(run)
    except _Refused as refused:
        sys.stderr.write(f"llmmixer serve: {refused}\n")
        return 2
    return 0


async def start_servers(runs: Any) -> None:
    """Start every configured server now, not on the first request, and say how each came up."""
    statuses = await runs.servers()
    for status in statuses:
        line = f"  {status['name']}: {status['status']} ({status['transport']})"
        if status.get("last_error") and status["status"] != "ready":
            line += f" - {status['last_error']}"
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Refused(Exception):
    """The event store cannot be opened: ``llmmixer serve`` exits 2 with the reason."""
