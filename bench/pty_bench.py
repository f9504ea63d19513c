"""PTY runner: output throughput and send-to-echo latency, measured side by side in one run.

Measured through the runner's public Python API (:class:`PtyRunner`: ``run`` for throughput; ``start``,
``plan_send``/``send`` and the session's output buffer for latency), not through MCP, so the figures are the
runner's own cost: PTY or pipe plumbing, the read loop, the bounded buffer.

- throughput: the same child (``head -c N /dev/zero``, N = 100 MB, 10 MB with ``--quick``) read to its end by the
  runner on the PTY backend and on the pipe backend, vs read by a plain ``subprocess`` pipe with ``os.read`` in a
  loop (the raw baseline), and vs a bare ptyprocess terminal read the same way (the kernel's PTY limit: Linux hands
  a PTY reader at most ~4 KB per read). Runs are interleaved; each figure is the median of the repetitions.
- latency: ``send`` of a short line to a ``cat`` session until its text is in the session's output (the terminal's
  echo on PTY; cat's copy on pipes), p50 and p95, vs the same round trip written straight to a ptyprocess child.

- sandbox: the cost of bubblewrap, side by side in one run: the time from ``run("true")`` to its result with the
  sandbox on vs off (median of interleaved runs; goal: at most 30 ms added), with a policy that puts guards in the
  sandbox (``deny rm``, ``ask git push``), on a quiet machine and under load (one busy process per core, started
  and stopped by the bench); and the PTY backend's throughput with the sandbox vs a bare ptyprocess reading the same
  100 MB (goal: at least 0.9x), and vs the runner without the sandbox. Skipped, with a row saying why, where
  bubblewrap does not work.

``python -m bench.pty_bench [--quick]`` prints the rows; ``python -m bench --only pty`` puts them in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import anyio

from bench.stats import percentile, row
from llmmixer.servers.pty_runner.runner import Limits, PtyRunner

MB = 1_000_000
NOTE = "measured through the runner's public Python API (PtyRunner), not MCP"


def child_command(size: int) -> str:
    return f"head -c {size} /dev/zero"


def raw_pipe_seconds(size: int) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", child_command(size)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd, total = proc.stdout.fileno(), 0
    while chunk := os.read(fd, 65536):
        total += len(chunk)
    proc.wait()
    elapsed = time.perf_counter() - started
    if total != size:
        raise RuntimeError(f"raw pipe read {total} of {size} bytes")
    return elapsed


def raw_pty_seconds(size: int) -> float:
    """The kernel's own PTY limit: ptyprocess and a blocking os.read loop, no runner at all."""
    import ptyprocess

    started = time.perf_counter()
    proc = ptyprocess.PtyProcess.spawn(["bash", "-c", child_command(size)])
    total = 0
    try:
        while True:
            try:
                chunk = os.read(proc.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            total += len(chunk)
    finally:
        proc.close(force=True)
    elapsed = time.perf_counter() - started
    if total != size:
        raise RuntimeError(f"raw pty read {total} of {size} bytes")
    return elapsed


async def runner_seconds(backend: str, size: int, sandbox: str = "off") -> float:
    runner = PtyRunner(backend=backend, limits=Limits(output_limit=1 << 20),  # type: ignore[arg-type]
                       sandbox=sandbox)
    started = time.perf_counter()
    result = await runner.run(child_command(size), timeout_s=600)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.backend != backend or not result.truncated:
        raise RuntimeError(f"runner ({backend}) run failed: {result.to_dict()['exit_code']}")
    return elapsed


async def throughput_rows(quick: bool) -> list[dict[str, Any]]:
    size = 10 * MB if quick else 100 * MB
    repeats = 3 if quick else 5
    times: dict[str, list[float]] = {"raw": [], "raw_pty": [], "pty": [], "pipe": []}
    for _ in range(repeats):
        times["raw"].append(await anyio.to_thread.run_sync(raw_pipe_seconds, size))
        times["raw_pty"].append(await anyio.to_thread.run_sync(raw_pty_seconds, size))
        times["pty"].append(await runner_seconds("pty", size))
        times["pipe"].append(await runner_seconds("pipe", size))
    rate = {name: size / MB / statistics.median(values) for name, values in times.items()}
    label = f"{size // MB} MB"
    return [
        row(f"pty: read {label} through the PTY backend vs a raw pipe", rate["pty"], rate["raw"],
            ">= 0.5x raw pipe", unit="MB/s", passed=rate["pty"] >= 0.5 * rate["raw"],
            note=f"{NOTE}; a Linux PTY hands the reader at most ~4 KB per read, see the raw-PTY row"),
        row(f"pty: read {label} through the PTY backend vs a raw PTY", rate["pty"], rate["raw_pty"],
            ">= 0.5x raw PTY", unit="MB/s", passed=rate["pty"] >= 0.5 * rate["raw_pty"],
            note=f"{NOTE}; baseline: ptyprocess + blocking os.read, no runner"),
        row(f"pty: read {label} through the pipe backend vs a raw pipe", rate["pipe"], rate["raw"],
            ">= 0.5x raw pipe", unit="MB/s", passed=rate["pipe"] >= 0.5 * rate["raw"], note=NOTE),
    ]


async def session_latencies(backend: str, samples: int) -> list[float]:
    runner = PtyRunner(backend=backend)  # type: ignore[arg-type]
    latencies: list[float] = []
    async with runner.running():
        session = await runner.start("cat")
        for index in range(samples):
            marker = f"ping-{index:05d}"
            plan = runner.plan_send(session, marker + "\n", None)
            start_offset = session.buffer.end
            started = time.perf_counter()
            await runner.send(session, plan, hold_partial_lines=False)
            with anyio.fail_after(10):
                while marker.encode() not in session.buffer.since(start_offset, final=True).data:
                    await session.changed().wait()
            latencies.append((time.perf_counter() - started) * 1000)
        await runner.kill(session)
    return latencies


def raw_pty_latencies(samples: int) -> list[float]:
    import ptyprocess

    proc = ptyprocess.PtyProcess.spawn(["cat"])
    latencies: list[float] = []
    try:
        for index in range(samples):
            marker = f"ping-{index:05d}".encode()
            seen = b""
            started = time.perf_counter()
            os.write(proc.fd, marker + b"\n")
            while marker not in seen:
                seen += os.read(proc.fd, 65536)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        proc.terminate(force=True)
    return latencies


async def latency_rows(quick: bool) -> list[dict[str, Any]]:
    samples = 50 if quick else 300
    raw = await anyio.to_thread.run_sync(raw_pty_latencies, samples)
    rows = []
    for backend in ("pty", "pipe"):
        ours = await session_latencies(backend, samples)
        for q in (50, 95):
            ours_q, raw_q = percentile(ours, q), percentile(raw, q)
            rows.append(row(f"pty: send -> echo latency p{q} ({backend} session, {samples} sends)", ours_q, raw_q,
                            "p95 < 20 ms" if q == 95 else "", unit="ms",
                            passed=ours_q < 20 if q == 95 else None,
                            note=f"{NOTE}; baseline: raw write/read on a ptyprocess cat"))
    return rows


async def startup_ms(runner: PtyRunner) -> float:
    started = time.perf_counter()
    result = await runner.run("true", timeout_s=60)
    elapsed = (time.perf_counter() - started) * 1000
    if result.exit_code != 0:
        raise RuntimeError(f"run('true') failed: {result.output[-200:]}")
    return elapsed


GUARDED_POLICY = """
[policy]
deny = ["rm"]
ask = ["git push"]

[sandbox]
mode = "on"
"""


def guarded_runner(directory: str) -> PtyRunner:
    from llmmixer.servers.pty_runner.policy import Policy

    runner = PtyRunner(backend="pty", sandbox="on", cwd=directory)
    path = os.path.join(directory, "policy.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(GUARDED_POLICY)
    runner.containment.use_policy(Policy.load(path))
    return runner


@contextlib.contextmanager
def cpu_load(busy: int) -> Iterator[None]:
    """``busy`` processes spinning on the CPU for the duration (the machine "under load")."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def startup_pair(on: PtyRunner, off: PtyRunner, samples: int) -> tuple[float, float]:
    times: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(samples):
        times["on"].append(await startup_ms(on))
        times["off"].append(await startup_ms(off))
    return statistics.median(times["on"]), statistics.median(times["off"])


async def sandbox_rows(quick: bool) -> list[dict[str, Any]]:
    from llmmixer.servers.pty_runner.sandbox import probe

    reason = probe()
    if reason is not None:
        return [row("pty: sandbox cost", None, None, "<= +30 ms, >= 0.9x", passed=None, note=f"skipped: {reason}")]
    samples = 15 if quick else 50
    note = f"{NOTE}; medians of interleaved runs, same runner options"
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmmixer-bench-") as directory:
        off = PtyRunner(backend="pty", sandbox="off", cwd=directory)
        for label, on in (("no policy", PtyRunner(backend="pty", sandbox="on", cwd=directory)),
                          ("guards for deny rm, ask git push", guarded_runner(directory))):
            await startup_ms(on)  # warm: the probe, and the guards built once
            for load, busy in (("quiet", 0), ("under load", os.cpu_count() or 1)):
                with cpu_load(busy):
                    start_on, start_off = await startup_pair(on, off, samples)
                rows.append(row(f"pty: run('true') to its result, sandbox ({label}) on vs off, {load} "
                                f"({samples} runs each)", start_on, start_off, "<= +30 ms", unit="ms",
                                passed=start_on - start_off <= 30,
                                note=f"{note}; added {start_on - start_off:.1f} ms"
                                     + (f"; {busy} busy processes" if busy else "")))
    size = 10 * MB if quick else 100 * MB
    rates: dict[str, list[float]] = {"on": [], "off": [], "raw_pty": []}
    for _ in range(3 if quick else 5):
        rates["raw_pty"].append(size / MB / await anyio.to_thread.run_sync(raw_pty_seconds, size))
        for mode in ("on", "off"):
            rates[mode].append(size / MB / await runner_seconds("pty", size, sandbox=mode))
    rate = {name: statistics.median(values) for name, values in rates.items()}
    return [
        *rows,
        row(f"pty: read {size // MB} MB through the PTY backend with the sandbox vs a raw ptyprocess", rate["on"],
            rate["raw_pty"], ">= 0.9x", unit="MB/s", passed=rate["on"] >= 0.9 * rate["raw_pty"],
            note=f"{note}; baseline: ptyprocess + blocking os.read, no runner, no sandbox"),
        row(f"pty: read {size // MB} MB through the PTY backend, sandbox on vs off", rate["on"], rate["off"],
            ">= 0.9x", unit="MB/s", passed=rate["on"] >= 0.9 * rate["off"], note=note),
    ]


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    return [*await throughput_rows(quick), *await latency_rows(quick), *await sandbox_rows(quick)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pty_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for item in anyio.run(run_bench, args.quick):
        print(f"{item['figure']}: ours={item['ours']:.3f} baseline={item['baseline']:.3f} {item['unit']} "
              f"ratio={item['ratio']:.2f} goal={item['goal']} passed={item['passed']}")


if __name__ == "__main__":
    main()
