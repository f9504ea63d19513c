"""Issue 24 item 10 on ``llmmixer serve`` as a user runs it: a busy port is a one-line error, a SIGTERM during a
store outage that leaves events unstored exits non-zero and says how many, and a run whose events were evicted
replays as a ``gap``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import server_env
from fault_support import own_redis
from reliability_support import LLMMIXER, serve, until

pytestmark = pytest.mark.anyio


async def test_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await anyio.run_process([LLMMIXER, "serve", "--port", str(port), "--store", "memory"], check=False,
                                       env=server_env(None, keys=False), cwd=tmp_path)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in stderr
    assert stderr.count("\n") == 1 and f"127.0.0.1:{port}" in stderr and "in use" in stderr


async def test_sigterm_with_events_left_unstored_exits_non_zero_and_says_how_many(emu: Any, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=200, tokens=40, reply="tick " * 40)
    with own_redis(tmp_path) as redis:
        async with serve(server_env(emu), tmp_path, "--store", f"{redis.url}?stream=sigterm") as server:
            started = await server.client.post("/api/runs", json={"prompt": "hi", "models": ["claude"],
                                                                    "mode": "all"})
            run_id = started.json()["run_id"]
            redis.kill()

            async def streaming() -> bool:
                return bool((await server.client.get(f"/api/runs/{run_id}")).json().get("partial", {}).get("claude"))

            await until(streaming)
            server.proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: server.proc.wait(60))
            stderr = server.stderr()
    assert code == 1, stderr[-2000:]
    line = next(x for x in stderr.splitlines() if "could not be stored before stopping" in x)
    assert int(line.split("llmmixer serve: ")[1].split()[0]) > 0


async def test_a_run_whose_events_were_evicted_replays_as_a_gap(emu: Any, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    async with serve(server_env(emu), tmp_path, "--store", f"sqlite:///{db}?maxlen=30") as server:
        old = await server.ask(prompt="first", models=["claude"], mode="all")
        for _ in range(3):  # enough events to evict the first run's
            await server.ask(prompt="more", models=["claude"], mode="all")
        async with server.client.stream("GET", f"/events?run={old['run_id']}") as stream:
            with anyio.fail_after(30):
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        first_event = line.split(":", 1)[1].strip()
                        break
    assert first_event == "gap"


async def test_a_run_interrupted_by_sigkill_is_rebuilt_from_its_stored_deltas(emu: Any, tmp_path: Path) -> None:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    reply = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=500, reply=reply, tokens=16)
    db = tmp_path / "events.db"
    async with serve(server_env(emu), tmp_path, "--store", f"sqlite:///{db}") as server:
        started = await server.client.post("/api/runs", json={"prompt": "count", "models": ["claude"], "mode": "all"})
        run_id = started.json()["run_id"]

        async def three_deltas_stored() -> bool:
            snap = (await server.client.get(f"/api/runs/{run_id}")).json()
            return len(snap.get("partial", {}).get("claude", "")) > 12

        await until(three_deltas_stored)
        await until(lambda: server.client.get("/healthz"))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
    async with Runs(Config(servers=default_servers(), settings=Settings()), open_store(f"sqlite:///{db}")) as runs:
        snap = await runs.snapshot(run_id)
    assert snap["status"] == "interrupted" and snap["prompt"] == "count"
    [leg] = snap["legs"]
    assert leg["source"] == "claude" and leg["status"] == "interrupted"
    assert leg["text"] and reply.startswith(leg["text"]) and leg["text"] != reply
