"""``llmmixer-pty`` / ``python -m llmmixer.servers.pty_runner``: the PTY command runner as an MCP server.

Every child is killed (process group) when the server exits: at the end of the lifespan when the host closes stdio
or HTTP serving stops, from the SIGTERM/SIGHUP handler, and at interpreter exit as a last resort.

With the sandbox off, the server first re-executes itself with a scrubbed environment (the children's allowlist plus
what Python and this server need): its own ``/proc/self/environ`` then holds no key for an unsandboxed child to read.
The original environment travels through an inherited pipe and lives only in the new process's memory, where the
``[secrets]`` sources and the transport's ``LLMMIXER_TOKEN`` still find it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from ..core.errors import InvalidInputError, LLMMixerError
from ..core.transport import add_transport_arguments, exit_at_once, serve
from .backend import BACKEND_ENV, resolve_backend
from .policy import POLICY_ENV, Policy
from .runner import Limits, PtyRunner
from .sandbox import SANDBOX_ENV, resolve_sandbox
from .secrets import EnvPolicy

REEXEC_ENV = "LLMMIXER_PTY_ENV_FD"  # set in the re-executed server: the fd its original environment comes from
_SERVER_ENV = ("PYTHON*", "VIRTUAL_ENV", "XDG_*", "LLMMIXER_PTY_*")

if TYPE_CHECKING:
    from ..core.mcp import LLMMixerMCPServer

__all__ = ["main", "build_parser", "build_server"]


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
    parser.add_argument("--sandbox", choices=("auto", "on", "off"), default=None,
                        help=f"run every child in bubblewrap: auto (default: where it works), on (refuse to start "
                             f"without it), off (default ${SANDBOX_ENV}, else the policy's [sandbox] mode)")
    parser.add_argument("--pass-env", action="append", default=[], metavar="NAMES",
                        help="more variable names (or shell patterns) children get besides PATH, HOME, LANG, LC_*, "
                             "TERM...; comma-separated, repeatable")
    parser.add_argument("--secret-env", action="append", default=[], metavar="NAMES",
                        help="variable names (or patterns) never passed to children, even when allowed; "
                             "comma-separated, repeatable")
    parser.add_argument("--protect", action="append", default=[], metavar="PATH",
                        help="a file never writable by commands (the policy file and the llmmixer config always "
                             "are); repeatable")
    parser.add_argument("--cwd", default=None, help="working directory for commands (default: the current one)")
    parser.add_argument("--root", action="append", default=[], metavar="DIR",
                        help="a directory a call's cwd and writable paths may name (default: the working directory "
                             "and the agents' directory; never /, $HOME or llmmixer's own directories); repeatable")
    return parser


def _names(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def _llmmixer_configs() -> list[str]:
    import platformdirs

    paths = [os.environ.get("LLMMIXER_CONFIG") or "", os.path.join(os.getcwd(), "llmmixer.json"),
             os.path.join(platformdirs.user_config_dir("llmmixer"), "config.json")]
    return [p for p in paths if p and os.path.exists(p)]


def _reexec_scrubbed(env_policy: EnvPolicy) -> None:
    """Replace this process by itself with a scrubbed environment (does not return on success)."""
    import fnmatch

    keep = {name: value for name, value in os.environ.items()
            if env_policy.allowed(name) or any(fnmatch.fnmatchcase(name, p) for p in _SERVER_ENV)}
    read_end, write_end = os.pipe()
    payload = json.dumps(dict(os.environ)).encode()
    if len(payload) > 60000:  # more than a pipe holds without a reader: keep the environment as it is
        os.close(read_end)
        os.close(write_end)
        return
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    keep[REEXEC_ENV] = str(read_end)
    os.execve(sys.executable, list(sys.orig_argv), keep)


def _restore_environment() -> bool:
    """In the re-executed server: the original environment back in memory (not in /proc/self/environ). True there.
    """
    fd = os.environ.pop(REEXEC_ENV, None)
    if fd is None or not fd.isdigit():
        return fd is not None
    chunks = []
    try:
        while chunk := os.read(int(fd), 65536):
            chunks.append(chunk)
        os.close(int(fd))
        original = json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return True
    for name, value in original.items():
        os.environ.setdefault(name, value)
    return True


def _build(args: argparse.Namespace, *, reexec: bool) -> tuple[PtyRunner, LLMMixerMCPServer]:
    """The runner and its server from parsed flags; ``reexec``: with the sandbox off, re-execute scrubbed first.

    Raises:
        LLMMixerError, ValueError: a policy, backend or limit that cannot be used.
    """
    env_policy = EnvPolicy(pass_env=_names(args.pass_env), never=_names(args.secret_env))
    policy = Policy.load(args.policy) if args.policy else Policy.permissive()
    backend = resolve_backend(args.backend)
    mode = args.sandbox or os.environ.get(SANDBOX_ENV) or policy.sandbox.mode
    enabled, _ = resolve_sandbox(mode)
    if not enabled and reexec:
        _reexec_scrubbed(EnvPolicy(pass_env=(*env_policy.pass_env, *policy.sandbox.pass_env),
                                   never=env_policy.never))
    if args.max_output_bytes <= 0 or args.max_sessions <= 0:
        raise ValueError("--max-output-bytes and --max-sessions must be positive")
    limits = Limits(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                    output_limit=args.max_output_bytes, stream_limit=args.max_output_bytes)
    from .server import build_pty_server  # after the re-exec: the MCP SDK is most of the start-up time

    runner = PtyRunner(backend=backend, limits=limits, env_policy=env_policy, cwd=args.cwd, sandbox=mode,
                       protect=(*args.protect, *_llmmixer_configs()), roots=tuple(args.root))
    return runner, build_pty_server(runner, policy)


def build_server(argv: Sequence[str] | None = None) -> LLMMixerMCPServer:
    """The server ``main`` serves, for the in-process transport (transport flags are ignored; its lifespan kills
    every child when the session ends).

    Raises:
        InvalidInputError: a flag value, policy or backend that cannot be used.
    """
    args = build_parser().parse_args([] if argv is None else list(argv))
    try:
        runner, server = _build(args, reexec=False)
    except ValueError as error:
        raise InvalidInputError(f"llmmixer-pty: {error}") from None
    if not runner.containment.enabled:
        # Out of its sandbox a child could read the host's environment (keys included) through /proc; a process
        # of its own re-executes scrubbed first (see the module docstring), an in-process runner cannot.
        raise InvalidInputError("llmmixer-pty runs in process only inside its sandbox (bubblewrap), which is off "
                                "or unavailable here; use \"transport\": \"stdio\"")
    return server


def main(argv: Sequence[str] | None = None) -> int:
    reexecuted = _restore_environment()
    args = build_parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        runner, server = _build(args, reexec=argv is None and not reexecuted and not sys.flags.interactive)
    except (LLMMixerError, ValueError) as error:
        sys.stderr.write(f"llmmixer-pty: {getattr(error, 'message', error)}\n")
        return 2
    atexit.register(runner.kill_all_now)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Kill first, then die of the same signal: a graceful unwind could hang on the thread blocked reading
        # stdin, and the children must not outlive us either way.
        runner.kill_all_now()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    serve(server, args, on_shutdown=runner.kill_all_now)
    if argv is None:  # the console script: every child is killed and every answer written (see exit_at_once)
        exit_at_once()
    return 0


if __name__ == "__main__":
    sys.exit(main())
