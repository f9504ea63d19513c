"""The resident service from outside (issue 22): what a user typing ``llmmixer ask`` waits for, against a fresh
Python process making one streamed call with the openai SDK, measured in the same run, interleaved.

Rows:
- warm ``llmmixer ask`` (a race of three, the emulators at zero latency, the service already running) vs the
  baseline, wall time from spawn to exit (goal <= 1.0x, ambition <= 0.5x);
- the first ``ask`` with nothing running (it starts the service and waits for it) vs the same baseline (<= 3.0x);
- ``llmmixer models`` on a warm service vs ``python -c pass`` (reported);
- CPU seconds per warm ``ask`` (the client process plus the service and its servers) vs the baseline's process
  (reported).

Every command runs with its own XDG directories, so no service of the user's is touched; each one this suite
starts is stopped before it ends.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .emulator import emulator_process
from .stats import row

__all__ = ["run_bench"]

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
BASELINE = """
import openai
client = openai.OpenAI()
stream = client.responses.create(model="gpt-5-mini", input="hi", stream=True)
for event in stream:
    pass
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            with_times = proc.cpu_times()
            total += with_times.user + with_times.system
        return total
    except psutil.Error:
        return 0.0


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process) for one command, which must succeed."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {done.stderr[-500:]}")
    return wall, _children_cpu() - cpu


def _service_pid(env: dict[str, str]) -> int | None:
    import json

    files = sorted((Path(env["XDG_RUNTIME_DIR"]) / "llmmixer").glob("serve-*.json"))
    return json.loads(files[0].read_text())["pid"] if files else None


def _stop(env: dict[str, str]) -> None:
    subprocess.run([LLMMIXER, "serve", "--stop"], env=env, capture_output=True, timeout=120)


def run_bench(quick: bool) -> list[dict[str, Any]]:
    rounds = 3 if quick else 7
    cold_rounds = 2 if quick else 3
    with emulator_process() as emulator, tempfile.TemporaryDirectory(prefix="llmmixer-bench-") as home:
        for vendor in ("anthropic", "openai", "gemini"):
            emulator.set_behaviour(vendor, ttft_ms=0, inter_token_ms=0, tokens=20)
        run_dir = Path(home) / "run"
        run_dir.mkdir(mode=0o700)
        env = {**os.environ, **emulator.env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench",
               "GEMINI_API_KEY": "bench", "HOME": home, "XDG_RUNTIME_DIR": str(run_dir),
               "XDG_STATE_HOME": f"{home}/state", "XDG_DATA_HOME": f"{home}/data",
               "XDG_CONFIG_HOME": f"{home}/config", "XDG_CACHE_HOME": f"{home}/cache"}
        env.pop("LLMMIXER_RESIDENT", None)
        ask = [LLMMIXER, "ask", "hi", "--json"]
        baseline = [sys.executable, "-c", BASELINE]
        try:
            cold, cold_base = [], []
            for _ in range(cold_rounds):
                _stop(env)
                cold_base.append(_timed(baseline, env)[0])
                cold.append(_timed(ask, env)[0])
            warm, warm_base, warm_cpu, base_cpu, models, empty = [], [], [], [], [], []
            pid = _service_pid(env)
            assert pid is not None, "the first ask left no service"
            for _ in range(rounds):
                wall, cpu = _timed(baseline, env)
                warm_base.append(wall)
                base_cpu.append(cpu)
                service_before = _tree_cpu(pid)
                wall, cpu = _timed(ask, env)
                warm.append(wall)
                warm_cpu.append(cpu + _tree_cpu(pid) - service_before)
                empty.append(_timed([sys.executable, "-c", "pass"], env)[0])
                models.append(_timed([LLMMIXER, "models", "--json"], env)[0])
        finally:
            _stop(env)
    med = statistics.median
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    note = f"median of {rounds}, interleaved; emulators at zero latency; {load}"
    return [
        row("R1 warm `llmmixer ask` (race of three) vs one streamed openai-SDK call in a fresh python", med(warm),
            med(warm_base), "<= 1.0x (ambition 0.5x)", unit="s", passed=med(warm) <= med(warm_base), note=note),
        row("R2 first `llmmixer ask` (starts the service) vs the same baseline", med(cold), med(cold_base),
            "<= 3.0x", unit="s", passed=med(cold) <= 3 * med(cold_base),
            note=f"median of {cold_rounds}; each round stops the service first; {load}"),
        row("R3 `llmmixer models` on a warm service vs `python -c pass`", med(models), med(empty), "reported",
            unit="s", note=f"median of {rounds}"),
        row("R4 CPU per warm `ask` (client + service + its servers) vs the baseline's process", med(warm_cpu),
            med(base_cpu), "reported", unit="CPU s", note=f"median of {rounds}; `llm` is not installed here"),
    ]


if __name__ == "__main__":
    import json

    for result in run_bench("--quick" in sys.argv):
        print(json.dumps(result))
