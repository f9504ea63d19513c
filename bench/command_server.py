"""A bench server in a subprocess of its own, driven over its stdin/stdout: it prints ``READY <url>``, then answers
each command line with ``OK ...``; ``quit`` ends it. The SSE suites use it so the server's CPU is not ours."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import anyio

__all__ = ["CommandServer"]


class CommandServer:
    """``python -m <module> --serve <kind>`` in a subprocess, and its command channel."""

    def __init__(self, module: str, kind: str, *, close_timeout_s: float = 10.0) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-m", module, "--serve", kind], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.close_timeout_s = close_timeout_s
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"the {kind} server of {module} did not start")
        self.url = ready[1]
        self.host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)

    async def ask(self, command: str) -> list[str]:
        def roundtrip() -> str:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline()

        reply = (await anyio.to_thread.run_sync(roundtrip)).split()
        if not reply or reply[0] != "OK":
            raise RuntimeError(f"server answered {reply!r} to {command!r}")
        return reply[1:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=self.close_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
