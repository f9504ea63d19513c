"""Issue 24 item 3: a timed-out call is cancelled on the server (its upstream closes), reads ``timeout``, and leaves
no process behind; a server that does not answer after the cancel is restarted; a silent or dripping vendor is
stopped by the idle timeout long before the total one.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from llmmixer.orchestrator.config import Config, ServerSpec, Settings, default_servers
from llmmixer.orchestrator.pool import ServerPool
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import ConnectTimeoutError

pytestmark = pytest.mark.anyio


def adapter_processes(module: str) -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and module in " ".join(p.cmdline())]


async def ask(runs: Runs, **kwargs: Any) -> dict[str, Any]:
    run_id = await runs.start_ask("count", models=["claude"], mode="all", **kwargs)
    assert await runs.wait(run_id, 120)
    return await runs.snapshot(run_id)


async def closed_upstreams(emu: Any, count: int) -> list[dict[str, Any]]:
    with anyio.fail_after(30):
        while True:
            records = emu.requests("anthropic")
            if len(records) >= count and all(r.get("outcome") for r in records):
                return list(records)
            await anyio.sleep(0.05)


async def warm(runs: Runs, **limits: float) -> None:
    """One call with the default limits (the server starts and imports its SDK), then ``limits`` apply."""
    assert (await ask(runs))["status"] == "done"
    for name, value in limits.items():
        setattr(runs.config.settings, name, value)


@pytest.mark.e2e
async def test_timeouts_cancel_on_the_server_read_timeout_and_leak_no_adapter(emu: Any) -> None:
    async with Runs(Config(servers=default_servers(), settings=Settings()), open_store("memory")) as runs:
        await warm(runs, call_timeout_s=1.5, idle_timeout_s=0)
        emu.reset()
        emu.set_behaviour("anthropic", ttft_ms=20_000)
        for _ in range(4):
            snap = await ask(runs)
            error = snap["legs"][0]["error"]
            assert error["kind"] == "timeout" and "call_timeout_s" in error["message"], error
        records = await closed_upstreams(emu, 4)
        assert [r["outcome"] for r in records] == ["client_closed"] * 4
        assert len(adapter_processes("claude_adapter")) == 1
        emu.reset()
        assert (await ask(runs))["status"] == "done"  # the same session serves the next call


async def test_a_dripping_vendor_is_stopped_by_the_idle_timeout(emu: Any) -> None:
    async with Runs(Config(servers=default_servers(inprocess=True), settings=Settings()), open_store("memory")) as runs:
        await warm(runs, idle_timeout_s=1)
        emu.reset()
        emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=4000, tokens=50, reply="drip " * 50)
        snap = await ask(runs)
    leg = snap["legs"][0]
    assert leg["error"]["kind"] == "timeout" and "idle_timeout_s" in leg["error"]["message"]
    assert leg["text"].startswith("drip")  # what it had streamed is kept
    assert [r["outcome"] for r in await closed_upstreams(emu, 1)] == ["client_closed"]


DEAF_SERVER = textwrap.dedent("""
    import time
    from mcp.server.mcpserver import MCPServer
    server = MCPServer("deaf")

    @server.tool()
    async def generate(prompt: str) -> str:
        if prompt == "hang":
            time.sleep(120)  # blocks the event loop: no cancel, no other request is served
        return "ok " + prompt

    server.run("stdio")
""")


@pytest.mark.e2e
async def test_a_server_that_does_not_answer_after_a_cancel_is_restarted_never_leaked(tmp_path: Path) -> None:
    script = tmp_path / "deaf.py"
    script.write_text(DEAF_SERVER)
    spec = ServerSpec(name="deaf", source="deaf", command=sys.executable, args=[str(script)])
    config = Config(servers={"deaf": spec}, settings=Settings())
    async with ServerPool(config) as pool:
        await pool.call("deaf", "generate", {"prompt": "warm"})
        config.settings.call_timeout_s = 1.5
        first = [p for p in psutil.Process().children() if str(script) in " ".join(p.cmdline())]
        assert len(first) == 1
        with pytest.raises(ConnectTimeoutError):
            await pool.call("deaf", "generate", {"prompt": "hang"})
        gone, alive = await anyio.to_thread.run_sync(lambda: psutil.wait_procs(first, timeout=30))
        assert alive == []
        result = await pool.call("deaf", "generate", {"prompt": "again"})  # a new process serves
        assert result.structured_content == {"result": "ok again"} or "ok again" in result.content[0].text
        [status] = pool.statuses()
        assert "after a call was cancelled" in (status.last_error or "")
