"""``llmmixer serve``: the web app (HTTP API, SSE events, dashboard) over one Runs service and one event store."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["serve_web"]


def serve_web(*, host: str, port: int, store_url: str | None, config_path: str | None) -> int:
    import anyio

    from ..servers.core.errors import LLMMixerError
    from ..servers.core.transport import TOKEN_ENV, is_loopback
    from .config import load_config
    from .runs import Runs
    from .shutdown import on_signal
    from .stores import open_store
    from .web.app import serve

    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        sys.stderr.write(f"refusing to bind {host}: a non-loopback bind requires ${TOKEN_ENV}\n")
        return 2
    try:
        config = load_config(config_path)
        store = open_store(store_url or config.settings.store)
    except LLMMixerError as error:
        sys.stderr.write(f"llmmixer serve: {error.message}\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        async with Runs(config, store) as runs:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                # SIGTERM/SIGINT: the runs in flight end as interrupted and are stored, then the web server stops
                # (cutting its open event streams), and only then does Runs close the store.
                tg.start_soon(on_signal, runs, stop)
                await serve(runs, store, host=host, port=port, token=token, shutdown=stop)
                tg.cancel_scope.cancel()

    anyio.run(run)
    return 0
