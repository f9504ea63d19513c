"""The stdio write path of an MCP server: ``FdWriter`` (coalesced, response after a drain) vs one write per message.

Both writers sit behind the same copy of the SDK's ``stdout_writer`` loop (a zero-buffer memory stream, then
``write`` + ``flush`` per message), write to a real pipe, and feed a reader process that keeps reading, as an MCP
host does. A call is ``NOTES`` progress notifications sent back to back (a vendor chunk's worth of deltas) and one
response; the reader acknowledges each response as it reads it, so the call's latency includes any wait for the
drain.

- CPU per message in this process (the writer's share of a streaming adapter's CPU, issue 16's 18%);
- ``os.write`` calls per message;
- call latency, first notification to the host having read the response (p50);
- reads in which a response came after a notification of the same read: the chunks a TypeScript-SDK host loses
  deltas in (typescript-sdk#2580). Ours must be 0.

The baseline is the writer this project had before (``OneWritePerMessage``, kept here verbatim in behaviour).
``python -m bench.stdio_bench [--quick]``; ``python -m bench --only stdio``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Protocol

import anyio

from llmmixer.servers.core.stdio import FdWriter

from .stats import percentile, row

NOTES = 60
READER = r"""
import os, sys
tail, shared = b"", 0
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    lines = (tail + chunk).split(b"\n")
    tail = lines.pop()
    seen_note = tail_note = False
    acks = 0
    for line in lines:
        if line.startswith(b'{"jsonrpc":"2.0","method"'):
            seen_note = True
        else:
            acks += 1
            if seen_note:
                shared += 1
    if acks:
        os.write(1, b"r" * acks)
sys.stderr.write(f"{shared}\n")
"""


class Writer(Protocol):
    writes: int

    async def write(self, text: str) -> None: ...
    async def flush(self) -> None: ...


class OneWritePerMessage:
    """The writer before coalescing: every ``flush`` writes its message at once (one system call or more)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._pending = bytearray()
        self.writes = 0

    async def write(self, text: str) -> None:
        self._pending += text.encode("utf-8")

    async def flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self.fd, self._pending)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            self.writes += 1
            del self._pending[:written]


def _note(call: int, index: int) -> str:
    params = {"progressToken": call, "progress": index + 1, "message": f"delta {index} 안녕 🚀 "}
    return json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": params},
                      separators=(",", ":"), ensure_ascii=False) + "\n"


def _response(call: int) -> str:
    result = {"content": [{"type": "text", "text": "x" * 200}], "isError": False}
    return json.dumps({"jsonrpc": "2.0", "id": call, "result": result}, separators=(",", ":")) + "\n"


async def one_run(coalesced: bool, calls: int) -> dict[str, Any]:
    wire_r, wire_w = os.pipe()
    ack_r, ack_w = os.pipe()
    reader = subprocess.Popen([sys.executable, "-c", READER], stdin=wire_r, stdout=ack_w, stderr=subprocess.PIPE)
    os.close(wire_r)
    os.close(ack_w)
    os.set_blocking(ack_r, False)
    writer: Writer = FdWriter(wire_w) if coalesced else OneWritePerMessage(wire_w)
    send, receive = anyio.create_memory_object_stream[str](0)
    latencies: list[float] = []
    cpu_started = time.process_time()
    async with anyio.create_task_group() as tg:
        if isinstance(writer, FdWriter):
            tg.start_soon(writer.run)

        async def sdk_stdout_writer() -> None:  # what mcp.server.stdio's stdout_writer does per message
            async with receive:
                async for text in receive:
                    await writer.write(text)
                    await writer.flush()

        tg.start_soon(sdk_stdout_writer)
        async with send:
            for call in range(calls):
                started = time.perf_counter()
                for index in range(NOTES):
                    await send.send(_note(call, index))
                await send.send(_response(call))
                while True:
                    try:
                        if os.read(ack_r, 64):
                            break
                    except BlockingIOError:
                        await anyio.wait_readable(ack_r)
                latencies.append(time.perf_counter() - started)
        if isinstance(writer, FdWriter):
            writer.close()
    cpu = time.process_time() - cpu_started
    os.close(wire_w)
    _, err = reader.communicate(timeout=30)
    os.close(ack_r)
    messages = calls * (NOTES + 1)
    return {"cpu_us_per_message": cpu / messages * 1e6, "writes_per_message": writer.writes / messages,
            "latency_ms": statistics.median(latencies) * 1000, "latencies": latencies,
            "shared_reads": int(err.decode().strip() or 0)}


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    rounds, calls = (3, 40) if quick else (7, 150)
    ours: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []
    for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
        base.append(await one_run(False, calls))
        ours.append(await one_run(True, calls))

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ours_lat = [x for run in ours for x in run["latencies"]]
    base_lat = [x for run in base for x in run["latencies"]]
    setup = f"{NOTES} notifications + 1 response per call, {calls} calls x {rounds} rounds, pipe to a reader process"
    return [
        row("stdio writer: CPU per message", median(ours, "cpu_us_per_message"), median(base, "cpu_us_per_message"),
            "lower than one write per message", unit="us", note=setup),
        row("stdio writer: os.write calls per message", median(ours, "writes_per_message"),
            median(base, "writes_per_message"), "notifications ready together in one write", unit="calls"),
        row("stdio writer: call latency p50 (host read the response)", percentile(ours_lat, 50) * 1000,
            percentile(base_lat, 50) * 1000, "<= 1.05x (the drain wait costs nothing that matters)", unit="ms"),
        row("stdio writer: call latency p95", percentile(ours_lat, 95) * 1000, percentile(base_lat, 95) * 1000,
            "no tail from waiting for the drain", unit="ms"),
        row("stdio writer: reads with a response after a notification", sum(r["shared_reads"] for r in ours),
            sum(r["shared_reads"] for r in base), "0 (typescript-sdk#2580 loses those deltas)", unit="reads",
            passed=sum(r["shared_reads"] for r in ours) == 0, ratio=None),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stdio_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for item in anyio.run(run_bench, args.quick):
        print(json.dumps(item, ensure_ascii=False))


if __name__ == "__main__":
    main()
