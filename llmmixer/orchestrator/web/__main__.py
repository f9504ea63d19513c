"""``python -m llmmixer.orchestrator.web --store URL [--host H] [--port N]``: the web app over an event store alone.

It serves ``/events`` and the dashboard from the store (written by other processes: ``llmmixer serve`` replicas,
tests, a bench), with no orchestrator: the run API answers ``unavailable``. ``llmmixer serve`` is the full server.
Once listening it prints ``serving <url>`` on stdout, so a parent process can wait for that line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from ...servers.core.errors import InvalidInputError, LLMMixerError, UnavailableError
from ...servers.core.security import TOKEN_ENV

if TYPE_CHECKING:
    from ...servers.core.events import Event
    from ..requests import RunRequest

__all__ = ["NoRuns", "main"]


class NoRuns:
    """The run service of a web app that has no orchestrator: every call says so."""

    def _refuse(self) -> NoReturn:
        raise UnavailableError("this server only streams events; start runs through `llmmixer serve`")

    async def start(self, request: RunRequest) -> str:
        self._refuse()

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        self._refuse()

    async def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        self._refuse()
        yield  # pragma: no cover - an async generator that refuses before its first item

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        return []  # a store alone keeps events, not the run log

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        self._refuse()

    async def cancel(self, run_id: str) -> dict[str, Any]:
        self._refuse()

    async def events(self, run_id: str, after: str | None, wait_s: float) -> list[Event]:
        self._refuse()

    async def servers(self) -> list[dict[str, Any]]:
        return []

    def server_statuses(self) -> list[dict[str, Any]]:
        return []

    def check_id(self, run_id: str) -> str:
        self._refuse()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmmixer.orchestrator.web", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--store", default="memory", help="memory | sqlite:///path | redis://host:port/db")
    parser.add_argument("--host", default="127.0.0.1", help=f"bind address (non-loopback requires ${TOKEN_ENV})")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another Host name to answer to (repeatable; also LLMMIXER_ALLOWED_HOSTS)")
    parser.add_argument("--keepalive", type=float, default=15.0, help="seconds between keepalive comments")
    parser.add_argument("--max-queue", type=int, default=None, help="events a client may lag before it is cut")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    from ..stores import open_store
    from .app import serve
    from .security import BindRefused

    try:
        store = open_store(args.store)
    except InvalidInputError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"keepalive_s": args.keepalive, "allowed_hosts": args.allowed_host}
    if args.max_queue is not None:
        options["max_queue"] = args.max_queue

    def ready(url: str) -> None:
        print(f"serving {url}", flush=True)

    async def run() -> None:
        async with store:
            await serve(NoRuns(), store, host=args.host, port=args.port, log_level=args.log_level,
                        on_ready=ready, **options)

    try:
        anyio.run(run)
    except BindRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LLMMixerError as exc:  # the store cannot be opened
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
