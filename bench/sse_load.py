"""A run's latency with many SSE readers connected, beside the same runs with none (issue 16, item 3).

The server is ``llmmixer serve``'s stack in a process of its own (Runs over the four stdio servers, the web app,
the memory store), the vendors are the emulators in another, and the readers are raw sockets in this process
that read ``GET /events`` and throw the bytes away (as cheap a client as there is, so the figure is the server's
cost, not the readers'). Each round starts ``concurrency`` runs at once through ``POST /api/runs`` and waits for
each with ``GET /api/runs/{id}?wait=``; the figure is the median run latency, with 0 readers and with N.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import anyio.abc
import httpx2

__all__ = ["run_latency_under_readers", "serve_runs"]

BEHAVIOUR = {"ttft_ms": 30.0, "inter_token_ms": 4.0, "tokens": 40}
HEADERS = {"X-LLMMixer": "1"}


async def serve_runs() -> None:
    """The server process (``python -m bench.sse_bench --serve runs``): prints ``READY <url>``, serves until stdin
    closes; ``clients`` answers how many ``/events`` streams are open."""
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store
    from llmmixer.orchestrator.web.app import create_app, running

    config = Config(servers=default_servers(), settings=Settings(mode="all"))
    async with Runs(config, open_store("memory")) as runs:
        await runs.pool.check()
        app = create_app(runs, runs.store, max_queue=1_000_000)
        async with running(app) as url:
            print(f"READY {url}", flush=True)
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    return
                if line.strip() == "clients":
                    print(f"OK {app.state.hub.subscriber_count}", flush=True)


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sse_bench", "--serve", "runs"], cwd=root,
                                     env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the runs server did not start")
        self.url = ready[1]
        self.host, self.port = self.url.removeprefix("http://").rsplit(":", 1)

    async def clients(self) -> int:
        def ask() -> str:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("clients\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline()

        return int((await anyio.to_thread.run_sync(ask)).split()[1])

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except Exception:  # noqa: BLE001 - a stuck server is killed
            self.proc.kill()
            self.proc.wait()


async def _reader(server: _Server, received: list[int]) -> None:
    """One SSE reader on a raw socket: read everything, keep only a byte count."""
    stream = await anyio.connect_tcp(server.host, int(server.port))
    async with stream:
        request = f"GET /events HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nAccept: text/event-stream\r\n\r\n"
        await stream.send(request.encode())
        while True:
            chunk = await stream.receive(262_144)
            received[0] += len(chunk)


async def _round(client: httpx2.AsyncClient, concurrency: int) -> list[float]:
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        run_id = (await client.post("/api/runs", json={"prompt": "bench prompt", "mode": "all"},
                                    headers=HEADERS)).json()["run_id"]
        while (result := (await client.get(f"/api/runs/{run_id}", params={"wait": "60"})).json())["status"] == "running":
            pass
        assert result["status"] == "done", (time.perf_counter() - started, result["status"])
        latencies.append((time.perf_counter() - started) * 1000)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(one)
    return latencies


async def run_latency_under_readers(readers: int = 500, concurrency: int = 20, rounds: int = 3) -> dict[str, Any]:
    """Median run latency (ms) with no reader and with ``readers`` connected, in one run; ``ratio`` = with/without."""
    from .emulator import emulator_process

    with emulator_process() as emulator:
        for vendor in ("anthropic", "openai", "gemini"):
            emulator.set_behaviour(vendor, **BEHAVIOUR)
        env = {**emulator.env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench", "GEMINI_API_KEY": "bench",
               "LLMMIXER_MAX_RETRIES": "0"}
        server = _Server(env)
        try:
            limits = httpx2.Limits(max_connections=concurrency * 2 + 10)
            async with httpx2.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
                await _round(client, concurrency)  # warm: SDK imports, connections
                # Interleaved, so a machine whose load drifts weighs on both sides alike.
                samples: dict[str, list[float]] = {"alone": [], "loaded": []}
                cpu: dict[str, float] = {"alone": 0.0, "loaded": 0.0}
                received = [0]
                for _ in range(rounds):
                    before = _cpu_of(server.proc.pid)
                    samples["alone"] += await _round(client, concurrency)
                    cpu["alone"] += _cpu_of(server.proc.pid) - before
                    async with anyio.create_task_group() as tg:
                        for _ in range(readers):
                            tg.start_soon(_reader, server, received)
                        with anyio.fail_after(60):
                            while await server.clients() < readers:
                                await anyio.sleep(0.05)
                        before = _cpu_of(server.proc.pid)
                        samples["loaded"] += await _round(client, concurrency)
                        cpu["loaded"] += _cpu_of(server.proc.pid) - before
                        tg.cancel_scope.cancel()
                    with anyio.fail_after(60):
                        while await server.clients() > 0:
                            await anyio.sleep(0.05)
                alone, loaded = statistics.median(samples["alone"]), statistics.median(samples["loaded"])
                print(f"[sse_load] alone {alone:.0f} ms, loaded {loaded:.0f} ms; server CPU {cpu}", file=sys.stderr)
        finally:
            server.close()
    return {"readers": readers, "concurrency": concurrency, "alone_ms": alone, "loaded_ms": loaded,
            "ratio": loaded / alone, "bytes_read": received[0], "server_cpu_alone_s": cpu["alone"],
            "server_cpu_loaded_s": cpu["loaded"]}


def _cpu_of(pid: int) -> float:
    """CPU seconds used by the server process (user + system, this process only: the adapters are children)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(json.dumps(anyio.run(run_latency_under_readers, readers)))
