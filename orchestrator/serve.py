"""``llmmixer serve``: the web app (HTTP API, SSE events, dashboard) over one Runs service and one event store."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

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

    async def run() -> None:
        async with Runs(config, store) as runs:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                # SIGTERM/SIGINT: the runs in flight end as interrupted and are stored, then the web server stops
                # (cutting its open event streams), and only then does Runs close the store.
                tg.start_soon(on_signal, runs, stop)
                await serve(runs, store, host=host, port=port, token=token, allowed_hosts=allowed_hosts,
                            shutdown=stop)
                tg.cancel_scope.cancel()

    anyio.run(run)
    return 0
