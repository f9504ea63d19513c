"""``llmmixer serve`` as a user runs it (the console script in a subprocess) for the fault tests of issue 24."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2

from llmmixer.servers.emulators.server import free_port

__all__ = ["LLMMIXER", "Serve", "serve", "until"]

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")


class Serve:
    def __init__(self, proc: subprocess.Popen[str], port: int, token: str, log: Any) -> None:
        self.proc, self.port, self.token, self.log = proc, port, token, log
        self.client = httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                         headers={"Authorization": f"Bearer {token}"})

    def stderr(self) -> str:
        self.log.seek(0)
        return str(self.log.read())

    async def ask(self, **body: Any) -> dict[str, Any]:
        """POST a run, wait for its end, return its snapshot."""
        started = await self.client.post("/api/runs", json=body)
        assert started.status_code == 202, (started.status_code, started.text, self.stderr()[-3000:])
        run_id = started.json()["run_id"]
        with anyio.fail_after(60):
            while True:
                snap = (await self.client.get(f"/api/runs/{run_id}")).json()
                if snap.get("status") != "running":
                    return dict(snap)
                await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], cwd: Path, *args: str) -> AsyncIterator[Serve]:
    """``llmmixer serve`` on a free port with a token, ready (``/healthz`` answered); stopped with SIGTERM after."""
    port, token = free_port(), secrets.token_urlsafe(16)
    log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would block the server once it filled up
    proc = subprocess.Popen([LLMMIXER, "serve", "--port", str(port), *args], env={**env, "LLMMIXER_TOKEN": token},
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    server = Serve(proc, port, token, log)
    try:
        with anyio.fail_after(60):
            while True:
                assert proc.poll() is None, server.stderr()
                try:
                    await server.client.get("/healthz")
                    break
                except httpx2.TransportError:
                    await anyio.sleep(0.05)
        yield server
    finally:
        await server.client.aclose()
        if proc.poll() is None:
            proc.terminate()
            try:
                await anyio.to_thread.run_sync(lambda: proc.wait(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


async def until(condition: Any, timeout_s: float = 30, every_s: float = 0.05) -> None:
    """Wait (bounded) until ``condition()`` (sync or async) is true."""
    with anyio.fail_after(timeout_s):
        while True:
            value = condition()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return
            await anyio.sleep(every_s)
