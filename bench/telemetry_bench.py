"""Telemetry's cost: per-call overhead with tracing on (spans and metrics exported over OTLP/HTTP to a local sink)
against off, for the same asks on the same emulators (goal: at most 3% more); and what cold start loads of the
OpenTelemetry SDK with it off (goal: nothing).

Each side runs in a worker process of its own (the SDK's providers are global to a process), interleaved, and the
figure is the median of the workers' median per-ask wall time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.emulator import emulator_process

ROUNDS = 3


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps nothing: it reads each export and answers 200."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def _worker(count: int) -> None:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    times = []
    async with Runs(Config(servers=default_servers(), settings=Settings(models=["claude"])),
                    open_store("memory")) as runs:
        for index in range(count + 3):  # three warm-ups: the server's start and first connection are not timed
            started = time.perf_counter()
            run_id = await runs.start_ask(f"hello {index}", models=["claude"], mode="race")
            await runs.wait(run_id, 60)
            if index >= 3:
                times.append(time.perf_counter() - started)
    print(json.dumps({"median_ms": statistics.median(times) * 1000}))


def _one(env: dict[str, str], count: int) -> float:
    done = subprocess.run([sys.executable, "-m", "bench.telemetry_bench", "--worker", str(count)],
                          capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(json.loads(done.stdout.strip().splitlines()[-1])["median_ms"])


def _sdk_modules_at_cold_start() -> tuple[int, float]:
    code = ("import sys, time; t = time.perf_counter(); import llmmixer.orchestrator.runs, llmmixer.servers.core.mcp; "
            "print(sum(1 for m in sys.modules if m.startswith('opentelemetry.sdk')), time.perf_counter() - t)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    modules, seconds = out.stdout.split()
    return int(modules), float(seconds)


def run_bench(quick: bool) -> list[dict[str, Any]]:
    count = 30 if quick else 150
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        with emulator_process() as emulator:
            base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            base.update(emulator.env, ANTHROPIC_API_KEY="sk-bench-not-a-real-key")
            on = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}"}
            offs, ons = [], []
            for _ in range(ROUNDS if not quick else 1):
                offs.append(_one(base, count))
                ons.append(_one(on, count))
    finally:
        sink.shutdown()
    off_ms, on_ms = statistics.median(offs), statistics.median(ons)
    modules, import_s = _sdk_modules_at_cold_start()
    return [
        {"figure": "per-ask wall time, tracing on vs off (1 leg, emulator at zero latency)", "ours": on_ms,
         "baseline": off_ms, "ratio": on_ms / off_ms, "goal": "≤ 1.03×", "passed": on_ms / off_ms <= 1.03,
         "unit": "ms"},
        {"figure": "OpenTelemetry SDK modules loaded at cold start, telemetry off", "ours": modules, "baseline": 0,
         "ratio": None, "goal": "0", "passed": modules == 0,
         "note": f"orchestrator + adapter stack imported in {import_s * 1000:.0f} ms"},
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        import anyio

        anyio.run(_worker, int(sys.argv[2]))
    else:
        for row in run_bench(quick="--quick" in sys.argv):
            print(row)
