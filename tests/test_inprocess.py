"""The ``inprocess`` transport (issue 22): the pool reaches a server object in this process over the MCP SDK's
in-memory streams; protocol, cancellation and errors are those of stdio, only the pipe differs."""

from __future__ import annotations

import json
from typing import Any

import anyio
import psutil
import pytest

from llmmixer.orchestrator.config import Config, ServerSpec, Settings, default_servers
from llmmixer.orchestrator.config import ConfigFile
from llmmixer.orchestrator.pool import ServerPool
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import InvalidInputError
from llmmixer.servers.core.results import result_payload

pytestmark = pytest.mark.anyio


def _config(*, inprocess: bool, models: list[str] | None = None) -> Config:
    servers = default_servers(inprocess=inprocess)
    return Config(servers=servers, settings=Settings(models=models or ["claude", "gpt", "gemini"]))


def _server_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "llmmixer.servers" in " ".join(p.cmdline())]


async def _calls(pool: ServerPool) -> dict[str, Any]:
    """What each transport answers: the tools, a success, a classified error and unknown arguments."""
    statuses = await pool.check()
    tools = {status.name: sorted(status.tools) for status in statuses}
    ok = await pool.call("gpt", "generate", {"prompt": "hi"})
    bad = await pool.call("claude", "generate", {"prompt": "hi", "max_tokens": 0})
    unknown = await pool.call("gemini", "generate", {"prompt": "hi", "colour": "red"})
    error = result_payload(bad)["error"]
    return {"tools": tools, "ok": (ok.is_error, result_payload(ok)["text"]),
            "bad": (bad.is_error, error["kind"], error["vendor"]),
            "unknown": (unknown.is_error, result_payload(unknown)["error"]["kind"],
                        result_payload(unknown)["error"].get("details"))}


@pytest.mark.e2e
async def test_the_same_answers_over_inprocess_as_over_stdio_and_no_process_is_started(emu: Any) -> None:
    emu.set_behaviour("openai", reply="same on every pipe", tokens=3)
    answers = {}
    for inprocess in (True, False):
        with anyio.fail_after(60):
            async with ServerPool(_config(inprocess=inprocess)) as pool:
                answers[inprocess] = await _calls(pool)
                if inprocess:
                    assert _server_children() == []
                    assert {s.transport for s in pool.statuses()} == {"inprocess"}
                else:
                    assert len(_server_children()) == len(pool.statuses())
    assert answers[True] == answers[False]
    assert answers[True]["ok"] == (False, "same on every pipe")
    assert answers[True]["bad"][0] is True and answers[True]["unknown"][1] == "invalid_input"


async def test_a_cancelled_race_closes_the_losers_upstream_over_inprocess(emu: Any) -> None:
    emu.set_behaviour("anthropic", ttft_ms=0, inter_token_ms=1, tokens=3)
    emu.set_behaviour("openai", ttft_ms=10, inter_token_ms=300, tokens=100)
    emu.set_behaviour("gemini", ttft_ms=10, inter_token_ms=300, tokens=100)
    async with Runs(_config(inprocess=True), open_store("memory")) as runs:
        with anyio.fail_after(120):
            await runs.pool.prepare(["claude", "gpt", "gemini"])  # in process: ready means the SDK is imported
            run_id = await runs.start_ask("hi", mode="race")
            assert await runs.wait(run_id, 60)
            result = await runs.snapshot(run_id)
            assert result["winner"] == "claude"
            for vendor in ("openai", "gemini"):
                while not (records := emu.requests(vendor)) or records[0]["outcome"] == "open":
                    await anyio.sleep(0.01)
                assert records[0]["outcome"] == "client_closed"
                assert records[0]["tokens_sent"] < 100


async def test_a_missing_key_names_the_variable_over_inprocess(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    async with ServerPool(_config(inprocess=True)) as pool:
        with anyio.fail_after(60):
            result = await pool.call("claude", "generate", {"prompt": "hi"})
    error = result_payload(result)["error"]
    assert result.is_error and error["kind"] == "auth" and "ANTHROPIC_API_KEY" in error["message"]


def test_an_inprocess_entry_is_validated_when_the_config_is_read() -> None:
    entry = ConfigFile.model_validate({"mcpServers": {"claude": {"transport": "inprocess", "args": ["--model", "x"]}}})
    spec = entry.mcpServers["claude"].spec("claude")  # type: ignore[index]
    assert spec.inprocess and spec.transport == "inprocess" and spec.args == ["--model", "x"]
    with pytest.raises(InvalidInputError, match="environment"):
        ServerSpec.from_json("claude", {"transport": "inprocess", "env": {"ANTHROPIC_API_KEY": "k"}})
    with pytest.raises(InvalidInputError, match="registered server"):
        ServerSpec.from_json("mine", {"transport": "inprocess"})
    with pytest.raises(InvalidInputError, match="url"):
        ServerSpec.from_json("claude", {"transport": "inprocess", "url": "http://127.0.0.1:1/mcp"})


async def test_flags_an_inprocess_server_refuses_are_its_start_error(emu: Any) -> None:
    spec = ServerSpec.from_json("claude", {"transport": "inprocess", "args": ["--no-such-flag"]})
    async with ServerPool(Config(servers={"claude": spec}, settings=Settings(models=["claude"]))) as pool:
        with anyio.fail_after(30):
            status = await pool.check()
    assert status[0].status == "dead"
    assert "--no-such-flag" in (status[0].last_error or ""), json.dumps(status[0].to_dict())
