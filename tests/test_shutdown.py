"""Issue 12 item 6: SIGTERM on ``llmmixer serve`` and ``llmmixer mcp`` ends the runs in flight as ``interrupted``,
their partial legs kept in the event store, instead of the process vanishing with them.

Both run as a user runs them (the console script in a subprocess, over a SQLite store) against the emulators, with a
slow vendor so the run is surely in flight when the signal arrives.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.orchestrator import run_record
from llmmixer.orchestrator.stores import SqliteStore
from llmmixer.servers.emulators.server import free_port

pytestmark = pytest.mark.anyio

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
REPLY = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"


def slow_claude(emu: Any) -> None:
    # 16 deltas 1 s apart: several have streamed when the signal comes, most have not.
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=1000, reply=REPLY, tokens=16)


async def stored_run(db: Path, run_id: str) -> tuple[list[Any], dict[str, Any]]:
    async with SqliteStore(db) as store:
        events = await store.read_after(None, 10_000, run=run_id)
    return events, run_record.snapshot(run_id, events)


def assert_interrupted_with_partial_leg(events: list[Any], result: dict[str, Any]) -> None:
    assert events[-1].type == "run.done" and events[-1].data["status"] == "interrupted"
    assert result["status"] == "interrupted" and "incomplete" not in result
    leg = result["legs"][0]
    assert leg["source"] == "claude" and leg["status"] == "cancelled"
    assert leg["text"] and REPLY.startswith(leg["text"]) and leg["text"] != REPLY  # what it had, not more


async def test_sigterm_on_serve_stores_in_flight_runs_as_interrupted(emu: Any, tmp_path: Path) -> None:
    slow_claude(emu)
    db = tmp_path / "events.db"
    port = free_port()
    server = subprocess.Popen([LLMMIXER, "serve", "--port", str(port), "--store", f"sqlite:///{db}"],
                              env=server_env(emu, LLMMIXER_TOKEN="t0ken"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                      headers={"Authorization": "Bearer t0ken"}) as client:
            with anyio.fail_after(60):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await anyio.sleep(0.05)
                started = await client.post("/api/runs", json={"prompt": "count", "models": ["claude"],
                                                               "mode": "all"})
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                while not (await client.get(f"/api/runs/{run_id}")).json().get("partial", {}).get("claude"):
                    await anyio.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        returncode = await anyio.to_thread.run_sync(lambda: server.wait(30))
    finally:
        if server.poll() is None:
            server.kill()
    assert returncode == 0, server.stderr.read() if server.stderr else ""
    events, result = await stored_run(db, run_id)
    assert_interrupted_with_partial_leg(events, result)


async def test_sigterm_on_mcp_answers_the_waiting_call_and_stores_the_run(emu: Any, tmp_path: Path) -> None:
    slow_claude(emu)
    db = tmp_path / "events.db"
    params = StdioServerParameters(command=LLMMIXER, args=["mcp", "--store", f"sqlite:///{db}"],
                                   env=server_env(emu), cwd=str(tmp_path))
    progressed = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progressed.set()

    def orchestrator_pid() -> int:
        mine = psutil.Process()
        found = [p for p in mine.children(recursive=True)
                 if "mcp" in p.cmdline() and any(part.endswith("llmmixer") for part in p.cmdline()[:2])]
        assert len(found) == 1, [p.cmdline() for p in found]
        return found[0].pid

    with anyio.fail_after(90):
        async with Client(params) as client:
            outcome: dict[str, Any] = {}

            async def call() -> None:
                result = await client.call_tool("ask", {"prompt": "count", "models": ["claude"], "mode": "all",
                                                        "wait_s": 60}, progress_callback=on_progress)
                outcome["result"] = result

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await progressed.wait()
                psutil.Process(orchestrator_pid()).send_signal(signal.SIGTERM)
    answer = outcome["result"].structured_content
    assert answer["status"] == "interrupted", answer
    events, result = await stored_run(db, answer["job_id"])
    assert_interrupted_with_partial_leg(events, result)


def _wait_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "the server exited before it listened"
        assert time.monotonic() < deadline, "the server did not start"
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.TransportError:
            time.sleep(0.05)


@pytest.mark.parametrize("transport", ["streamable-http", "stdio"])
def test_an_idle_mcp_stops_quietly_on_a_signal(emu: Any, tmp_path: Path, transport: str) -> None:
    """Issue 25: idle, SIGTERM over HTTP gives no traceback; over stdio a host's SIGINT at exit logs no
    "interrupting the runs in flight" with nothing in flight. Either way the exit is clean (0)."""
    port = free_port()
    args = ["--transport", "streamable-http", "--port", str(port)] if transport != "stdio" else []
    process = subprocess.Popen([str(Path(sys.executable).with_name("llmmixer")), "mcp", *args],
                               env=server_env(emu), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        if transport == "stdio":
            hello = ('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
                     '"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n')
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(hello.encode())
            process.stdin.flush()
            assert b'"result"' in process.stdout.readline()  # serving
            process.send_signal(signal.SIGINT)
        else:
            _wait_listening(f"http://127.0.0.1:{port}/mcp", process)
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = stderr.decode(errors="replace")
    assert process.returncode == 0, text
    assert "Traceback" not in text and "interrupting" not in text and "CancelledError" not in text, text
