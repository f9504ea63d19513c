"""``llmmixer serve``: the resident service. The web app (HTTP API, SSE events, dashboard) over one Runs service and
one event store, published in the runtime file (:mod:`.runtime`) so every CLI process for the same config uses it.

- **Token.** Every request needs it, loopback included: ``$LLMMIXER_TOKEN`` when set, else a random one made at
  start. It is printed in the dashboard URL (``/?token=`` sets the cookie) and written to the 0600 runtime file,
  where the CLI reads it.
- **Store.** The user's SQLite run log (the one ``ask`` writes) unless ``--store`` or ``settings.store`` says
  otherwise, so the dashboard shows every face's runs, and the history survives a restart.
- **Idle exit.** A service started by the CLI (``--idle-exit``) stops after ``settings.idle_exit_s`` with no
  request open and no run in flight.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["serve_web", "IDLE_CHECK_S"]

IDLE_CHECK_S = 5.0  # how often an idle-exiting service looks at its clients and runs (at most)


def serve_web(*, host: str, port: int, store_url: str | None, config_path: str | None,
              allowed_hosts: Sequence[str] = (), idle_exit: bool = False, log_path: str | None = None) -> int:
    import anyio

    from ..servers.core.errors import LLMMixerError
    from ..servers.core.security import TOKEN_ENV, BindRefused, check_bind
    from . import runtime
    from .asking import default_log_store
    from .config import load_config
    from .runs import Runs
    from .shutdown import on_signal
    from .stores import open_store
    from .web.activity import Activity
    from .web.app import serve

    chosen = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, chosen)  # a public bind needs a token the operator chose, not one made up here
    except BindRefused as refused:
        sys.stderr.write(f"llmmixer serve: {refused}\n")
        return 2
    token = chosen or secrets.token_urlsafe(32)
    try:
        config = load_config(config_path)
        store = open_store(store_url or config.settings.store or default_log_store())
    except LLMMixerError as error:
        sys.stderr.write(f"llmmixer serve: {error.message}\n")
        return 2
    busy = _port_in_use(host, port)
    if busy is not None:
        sys.stderr.write(f"llmmixer serve: cannot listen on {host}:{port}: {busy} (another service on that port? "
                         "pick one with --port, or stop it: llmmixer serve --stop)\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    identity = runtime.config_identity(config_path)
    unwritten = [0, 0]  # events, run records the store never took (a shutdown during an outage)
    activity = Activity()
    published = False

    def announce(url: str) -> None:
        nonlocal published
        info = runtime.claim(url, token, identity, str(config.path) if config.path else None, log_path)
        published = info is not None
        shown = f"{url}/?token={token}"
        sys.stdout.write(f"LLMMixer dashboard on {shown}  (store {store.url}; Ctrl-C or llmmixer serve --stop "
                         "stops)\n")
        if not published:
            sys.stdout.write("  (another service already serves this config; the CLI keeps using that one)\n")
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
                if idle_exit:
                    async def leave_when_idle() -> None:
                        await exit_when_idle(runs, activity, config.settings.idle_exit_s)
                        if published:  # unpublished first: a client that looks now starts a new service
                            runtime.release(identity)
                        stop.set()

                    tg.start_soon(leave_when_idle)
                try:
                    await serve(runs, store, host=host, port=port, token=token, allowed_hosts=allowed_hosts,
                                shutdown=stop, on_ready=announce, activity=activity)
                finally:
                    if published:
                        runtime.release(identity)
                tg.cancel_scope.cancel()
        unwritten[:] = [runs.writer.unwritten, runs.writer.records_pending]

    try:
        anyio.run(run)
    except _Refused as refused:
        sys.stderr.write(f"llmmixer serve: {refused}\n")
        return 2
    if any(unwritten):
        sys.stderr.write(f"llmmixer serve: {unwritten[0]} events and {unwritten[1]} run records could not be "
                         f"stored before stopping (the event store {store.url} was failing)\n")
        return 1
    return 0


def _port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now (a busy port), else None; asked before anything starts."""
    import errno
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None  # an unresolvable host: the server's own error says so
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no reason
        try:
            probe.bind(address)
        except OSError as exc:
            return "the address is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return None


async def exit_when_idle(runs: Any, activity: Any, idle_s: float) -> None:
    """Return once no request has been open and no run in flight for ``idle_s`` seconds."""
    import anyio

    while True:
        if runs.in_flight():
            activity.changed = max(activity.changed, _now())
        idle = activity.idle_for()
        if idle >= idle_s:
            logging.getLogger("llmmixer.serve").warning("idle for %.0f s: stopping", idle)
            return
        await anyio.sleep(min(IDLE_CHECK_S, idle_s - idle))


def _now() -> float:
    import time

    return time.monotonic()


async def start_servers(runs: Any) -> None:
    """Start every configured server now, not on the first request, and say how each came up."""
    statuses = await runs.servers()
    for status in statuses:
        line = f"  {status['name']}: {status['status']} ({status['transport']})"
        if status.get("last_error") and status["status"] != "ready":
            line += f" - {status['last_error']}"
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    # Warm now: refresh the model lists `llmmixer models` and `-m` read without starting anything (model_cache.py).
    from .models import list_all_models

    ready = [s["source"] for s in statuses if s["status"] == "ready" and s["source"] in runs.config.model_sources]
    if ready:
        await list_all_models(runs, ready)


class _Refused(Exception):
    """The event store cannot be opened: ``llmmixer serve`` exits 2 with the reason."""
