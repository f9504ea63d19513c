"""``llmmixer-pty`` / ``python -m llmmixer.servers.pty_runner``: the PTY command runner as an MCP server.

Every child is killed (process group) when the server exits: at the end of the lifespan when the host closes stdio
or HTTP serving stops, from the SIGTERM/SIGHUP handler, and at interpreter exit as a last resort.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from ..core.errors import LLMMixerError
from ..core.transport import add_transport_arguments, serve
from .backend import BACKEND_ENV, resolve_backend
from .env import SecretScrubber
from .policy import POLICY_ENV, Policy
from .runner import Limits, PtyRunner
from .server import build_pty_server

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = argparse.ArgumentParser(prog="llmmixer-pty",
                                     description="LLMMixer PTY command runner as an MCP server.")
    add_transport_arguments(parser)
    parser.add_argument("--policy", default=os.environ.get(POLICY_ENV),
                        help=f"command policy file (TOML; default ${POLICY_ENV}; none: everything is allowed)")
    parser.add_argument("--backend", choices=("pty", "pipe"), default=None,
                        help=f"pty (default) or pipe (default ${BACKEND_ENV})")
    parser.add_argument("--max-output-bytes", type=int, default=defaults.output_limit,
                        help="output kept per session and per run result (default 1 MiB)")
    parser.add_argument("--max-sessions", type=int, default=defaults.max_sessions)
    parser.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s,
                        help="seconds before an unused session is killed")
    parser.add_argument("--secret-env", action="append", default=[], metavar="NAMES",
                        help="more variable names (or shell patterns) never passed to children; comma-separated, "
                             "repeatable")
    parser.add_argument("--cwd", default=None, help="working directory for commands (default: the current one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        policy = Policy.load(args.policy) if args.policy else Policy.permissive()
        backend = resolve_backend(args.backend)
    except (LLMMixerError, ValueError) as error:
        sys.stderr.write(f"llmmixer-pty: {getattr(error, 'message', error)}\n")
        return 2
    if args.max_output_bytes <= 0 or args.max_sessions <= 0:
        sys.stderr.write("llmmixer-pty: --max-output-bytes and --max-sessions must be positive\n")
        return 2
    extra = [name.strip() for value in args.secret_env for name in value.split(",") if name.strip()]
    limits = Limits(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                    output_limit=args.max_output_bytes, stream_limit=args.max_output_bytes)
    runner = PtyRunner(backend=backend, limits=limits, scrubber=SecretScrubber(extra), cwd=args.cwd)
    atexit.register(runner.kill_all_now)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Kill first, then die of the same signal: a graceful unwind could hang on the thread blocked reading
        # stdin, and the children must not outlive us either way.
        runner.kill_all_now()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    serve(build_pty_server(runner, policy), args, on_shutdown=runner.kill_all_now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
