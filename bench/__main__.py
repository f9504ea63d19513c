"""``python -m bench [--quick] [--peers] [--json FILE] [--only NAME,...]``: every benchmark, one table.

Each suite module exposes ``run_bench(quick: bool) -> list[dict]`` (sync or async) returning rows
``{"figure", "ours", "baseline", "ratio", "goal", "passed"}``; ``unit`` and ``note`` are optional. A suite that
fails is reported as a row, so one broken figure never hides the others.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

import anyio

SUITES = {
    "adapters": "bench.adapter_bench",  # P1: MCP -> adapter -> SDK -> emulator vs the SDK directly
    "race": "bench.race_bench",  # P2, P3, P6 and the racing benchmark
    "mix": "bench.mix_bench",  # synthesize latency vs slowest proposer + aggregator alone
    "sse": "bench.sse_bench",  # P4: SSE fan-out, replay, memory
    "pty": "bench.pty_bench",  # P5: PTY throughput and echo latency
    "mcp": "bench.mcp_bench",  # llmmixer mcp vs llmmixer ask --json
    "stdio": "bench.stdio_bench",  # the stdio writer: coalesced, response after the drain, vs one write per message
    "stores": "bench.store_bench",  # RSS over 10,000 runs, the writer's spool, group commit under 50 asks
    "reliability": "bench.reliability_bench",  # SQLite FULL vs NORMAL; serve RSS over 500 runs of 1 MB
    "resident": "bench.resident_bench",  # warm/first ask through the resident service vs one openai-SDK call
    "agents": "bench.agents_bench",  # coding-agent legs: losers stopped, leg overhead over the CLI directly
    "startup": "bench.startup_bench",  # spawn to tools/list for each server vs a minimal MCP stdio server
    "telemetry": "bench.telemetry_bench",  # tracing on vs off per ask; the SDK kept out of cold start
    "gateway": "bench.gateway_bench",  # the vendors' APIs on serve: TTFT overhead, race of 3, hedged p99
    "peers": "bench.peers_bench",  # the same figures through LiteLLM, side by side (--peers)
}
DEFAULT_SUITES = [name for name in SUITES if name != "peers"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count()}


def run_suite(name: str, quick: bool) -> list[dict[str, Any]]:
    started = time.perf_counter()
    try:
        module = importlib.import_module(SUITES[name])
        runner = module.run_bench
        rows = anyio.run(runner, quick) if inspect.iscoroutinefunction(runner) else runner(quick)
    except Exception as exc:  # noqa: BLE001 - a broken suite becomes a visible row, not a crash
        traceback.print_exc(file=sys.stderr)
        rows = [{"figure": f"{name}: suite failed", "ours": None, "baseline": None, "ratio": None, "goal": "",
                 "passed": False, "note": f"{type(exc).__name__}: {exc}"}]
    for row in rows:
        row.setdefault("suite", name)
    print(f"[bench] {name}: {len(rows)} rows in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"LLMMixer bench — {info['cpu']} ({info['cores']} cores), Python {info['python']}")
    for column in ("figure", "ours", "baseline", "ratio", "goal", "pass"):
        table.add_column(column, justify="left" if column in ("figure", "goal") else "right")
    for row in rows:
        passed = row.get("passed")
        mark = "-" if passed is None else ("[green]pass[/]" if passed else "[red]fail[/]")
        unit = f" {row['unit']}" if row.get("unit") else ""
        table.add_row(str(row["figure"]), fmt(row.get("ours")) + unit, fmt(row.get("baseline")) + unit,
                      fmt(row.get("ratio")), str(row.get("goal") or ""), mark)
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run with fewer samples")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and machine info as JSON")
    parser.add_argument("--only", help=f"comma-separated suites out of {','.join(SUITES)}")
    parser.add_argument("--peers", action="store_true",
                        help="LLMMixer and LiteLLM side by side (needs the bench-peers extra); alone, only that suite")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else ([] if args.peers else list(DEFAULT_SUITES))
    if args.peers and "peers" not in names:
        names.append("peers")
    unknown = set(names) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    info = machine()
    rows = [row for name in names for row in run_suite(name, args.quick)]
    print_table(rows, info)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": info, "quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "rows": rows}, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
