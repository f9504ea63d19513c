"""``llmmixer mcp`` end to end: SDK client over stdio -> orchestrator -> adapter servers -> SDKs -> emulators.

The emulators run in this process; the orchestrator runs as a child (``llmmixer mcp``, the console script a host
launches) with fake keys and base URLs pointing at them, and launches the adapter servers itself, as it does under
Claude Desktop.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from adapter_support import error_of as adapter_error_of
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.orchestrator.mcp_schema import compact_schema
from llmmixer.orchestrator.mixer import MODES
from llmmixer.servers.emulators.server import EmulatorServer

VENDOR_OF = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
TOOLS = {"ask", "run_command", "agent", "job", "cancel"}
TOKEN_BUDGET = 2_000
PTY_MISSING = importlib.util.find_spec("llmmixer.servers.pty_runner.__main__") is None

pytestmark = pytest.mark.anyio


def orchestrator(emu: EmulatorServer, cwd: Path, *extra: str) -> StdioServerParameters:
    """``llmmixer mcp`` as a host starts it; cwd is a fresh directory so no stray ``llmmixer.json`` is read."""
    return StdioServerParameters(command=script_path("llmmixer"), args=["mcp", *extra], env=server_env(emu),
                                 cwd=str(cwd))


def structured(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    # Hosts that read only text see the same object.
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return structured(result)


def error_of(result: Any) -> dict[str, Any]:
    return adapter_error_of(result)  # no structured content; the plain line, then the JSON


async def streams(emu: EmulatorServer) -> list[dict[str, Any]]:
    """The generation requests the emulator has seen (POSTs; model listing is a GET)."""
    return [r for r in await anyio.to_thread.run_sync(emu.requests) if r["method"] == "POST"]


async def wait_for_streams(emu: EmulatorServer, predicate: Callable[[list[dict[str, Any]]], bool],
                           timeout_s: float = 20) -> list[dict[str, Any]]:
    """Poll the emulator's request log (another thread's state: there is no event to await) until it holds."""
    with anyio.fail_after(timeout_s):
        while True:
            records = await streams(emu)
            if predicate(records):
                return records
            await anyio.sleep(0.02)


def all_streaming(records: list[dict[str, Any]]) -> bool:
    return len(records) == 3 and all(r["first_byte_at"] for r in records)


def all_ended(records: list[dict[str, Any]]) -> bool:
    return all(r["outcome"] != "open" for r in records)


def slow_stream(emu: EmulatorServer) -> None:
    """Every vendor streams for about 40 s: long enough that only a cancel can end it within the test."""
    for vendor in VENDOR_OF.values():
        emu.set_behaviour(vendor, ttft_ms=0, inter_token_ms=100, tokens=400, reply="x" * 400)


# ---------------------------------------------------------------------------------------------------------------


def test_compact_schema_keeps_meaning_and_drops_noise():
    schema = {"title": "X", "type": "object", "properties": {
        "title": {"title": "Title", "type": "string"},
        "n": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None, "title": "N"},
        "xs": {"anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}], "default": None},
        "leg": {"anyOf": [{"$ref": "#/$defs/Leg"}, {"type": "null"}]},
        "mode": {"default": "race", "enum": ["race", "all"], "title": "Mode", "type": "string"},
        "extra": {"type": "object", "additionalProperties": True},
        "strict": {"type": "object", "additionalProperties": False},
    }, "required": ["title"]}
    assert compact_schema(schema) == {"type": "object", "properties": {
        "title": {"type": "string"},  # a property *named* title survives
        "n": {"type": ["number", "null"]},
        "xs": {"type": ["array", "null"], "items": {"type": "string"}},
        "leg": {"anyOf": [{"$ref": "#/$defs/Leg"}, {"type": "null"}]},  # a $ref keeps its anyOf
        "mode": {"default": "race", "enum": ["race", "all"], "type": "string"},
        "extra": {"type": "object"},  # additionalProperties: true is the default
        "strict": {"type": "object", "additionalProperties": False},
    }, "required": ["title"]}


async def test_tools_list_is_small_and_says_when_to_use_which_mode(emu, tmp_path):
    with anyio.fail_after(30):
        async with Client(orchestrator(emu, tmp_path)) as client:
            tools = (await client.list_tools()).tools
            caps = client.server_capabilities
    assert {t.name for t in tools} == TOOLS
    # Resources: only the race view of MCP Apps hosts (tests/test_mcp_app.py).
    assert caps.tools is not None and not (caps.prompts or caps.logging or caps.completions)
    for tool in tools:
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object", tool.name
    ask = next(t for t in tools if t.name == "ask")
    assert ask.input_schema["properties"]["mode"]["enum"] == list(MODES)
    for mode in MODES:
        assert f"{mode} (" in ask.description  # each mode is explained, not just listed
    text = json.dumps({"tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]},
                      ensure_ascii=False, separators=(",", ":"))
    tokens = -(-len(text) // 4)
    print(f"\nllmmixer mcp tools/list: {len(text.encode())} bytes, ~{tokens} tokens (4 chars/token)")
    assert tokens < TOKEN_BUDGET


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_ask_race_returns_the_winner_streams_its_deltas_and_closes_the_losers(emu, tmp_path, mode):
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path), mode=mode) as client:
            # Start the three adapter servers first, so each loser's request surely reaches its vendor in time.
            ok(await client.call_tool("ask", {"prompt": "warm up", "mode": "all"}))
            emu.reset()
            # 3 s: ample time for both losers' requests to reach their vendor, even on a loaded CI box.
            emu.set_behaviour("anthropic", ttft_ms=3_000, reply="Claude answers first.")
            emu.set_behaviour("openai", ttft_ms=60_000, reply="GPT is far slower.")
            emu.set_behaviour("gemini", ttft_ms=60_000, reply="Gemini is far slower.")
            out = ok(await client.call_tool("ask", {"prompt": "Say hi", "mode": "race",
                                                    "models": ["claude", "gpt", "gemini"]},
                                            progress_callback=on_progress))
            records = await wait_for_streams(emu, lambda rs: len(rs) == 3 and all_ended(rs))
    assert out["status"] == "done" and out["mode"] == "race" and out["winner"] == "claude"
    legs = {leg["source"]: leg for leg in out["legs"]}
    assert legs["claude"]["status"] == "won" and legs["claude"]["text"] == "Claude answers first."
    assert legs["gpt"]["status"] == legs["gemini"]["status"] == "cancelled"
    outcome = {r["vendor"]: r["outcome"] for r in records}
    # The losers' HTTP streams were closed by us, long before their 60 s first token.
    assert outcome == {"anthropic": "completed", "openai": "client_closed", "gemini": "client_closed"}
    claude_deltas = "".join(m.removeprefix("claude: ") for m in progress if m.startswith("claude: "))
    assert claude_deltas == "Claude answers first."


async def test_a_run_longer_than_wait_s_becomes_a_job_that_job_later_finishes(emu, tmp_path):
    # Slow but finite: it outlives wait_s=1 by several seconds, and still ends well inside the test's bound.
    for vendor in VENDOR_OF.values():
        emu.set_behaviour(vendor, ttft_ms=4_000, reply=f"{vendor} took its time.")
    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path)) as client:
            first = ok(await client.call_tool("ask", {"prompt": "Slow question", "mode": "hedge", "wait_s": 1}))
            assert first["status"] == "running" and first["job_id"]
            assert isinstance(first["partial"], dict)

            peek = ok(await client.call_tool("job", {"job_id": first["job_id"]}))
            assert peek["status"] == "running" and peek["kind"] == "ask"

            final = ok(await client.call_tool("job", {"job_id": first["job_id"], "wait_s": 60}))
    assert final["status"] == "done" and final["job_id"] == first["job_id"]
    assert final["mode"] == "hedge" and final["winner"] in VENDOR_OF
    winner = next(leg for leg in final["legs"] if leg["source"] == final["winner"])
    assert winner["text"] == f"{VENDOR_OF[final['winner']]} took its time."


async def test_cancel_closes_every_upstream_stream(emu, tmp_path):
    slow_stream(emu)
    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path)) as client:
            job = ok(await client.call_tool("ask", {"prompt": "Stream for a long time", "mode": "all",
                                                    "wait_s": 0.2}))
            assert job["status"] == "running"
            await wait_for_streams(emu, all_streaming)  # every leg is streaming before we cancel
            cancelled = ok(await client.call_tool("cancel", {"job_id": job["job_id"]}))
            assert cancelled["status"] == "cancelled" and cancelled["job_id"] == job["job_id"]
            records = await wait_for_streams(emu, all_ended)
            after = ok(await client.call_tool("job", {"job_id": job["job_id"]}))
    assert sorted(r["vendor"] for r in records) == ["anthropic", "gemini", "openai"]
    assert {r["outcome"] for r in records} == {"client_closed"}, records
    assert all(r["closed_at"] for r in records)
    assert after["status"] == "cancelled"
    assert {leg["status"] for leg in after["legs"]} == {"cancelled"}


async def test_a_host_that_abandons_the_call_cancels_the_run_end_to_end(emu, tmp_path):
    slow_stream(emu)
    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path)) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: client.call_tool("ask", {"prompt": "Stream", "mode": "all"}))
                await wait_for_streams(emu, all_streaming)
                tg.cancel_scope.cancel()  # what a host does when its user stops the turn or the call times out
            records = await wait_for_streams(emu, all_ended)
    assert {r["outcome"] for r in records} == {"client_closed"}, records


async def test_bad_input_is_a_clear_invalid_input_error(emu, tmp_path):
    with anyio.fail_after(60):
        async with Client(orchestrator(emu, tmp_path)) as client:
            empty = error_of(await client.call_tool("ask", {"prompt": "   "}))
            bad_mode = error_of(await client.call_tool("ask", {"prompt": "hi", "mode": "fastest"}))
            bad_model = error_of(await client.call_tool("ask", {"prompt": "hi", "models": ["llama"]}))
            malformed = error_of(await client.call_tool("job", {"job_id": "../../etc/passwd"}))
            malformed_cancel = error_of(await client.call_tool("cancel", {"job_id": "a b"}))
            unknown = error_of(await client.call_tool("job", {"job_id": "nosuchjob123"}))
            unknown_cancel = error_of(await client.call_tool("cancel", {"job_id": "nosuchjob123"}))
            negative = error_of(await client.call_tool("job", {"job_id": "nosuchjob123", "wait_s": -1}))
            missing = error_of(await client.call_tool("ask", {}))
    for err in (empty, bad_mode, bad_model, malformed, malformed_cancel, unknown, unknown_cancel, negative, missing):
        assert err["kind"] == "invalid_input" and err["retryable"] is False, err
    assert "prompt is empty" in empty["message"]
    assert "mode" in bad_mode["message"] and "'fastest'" in bad_mode["message"] and "'race'" in bad_mode["message"]
    assert "llama" in bad_model["message"] and "claude" in bad_model["message"]
    assert "malformed job id" in malformed["message"] and "malformed job id" in malformed_cancel["message"]
    assert "unknown job id 'nosuchjob123'" in unknown["message"]
    assert "unknown job id 'nosuchjob123'" in unknown_cancel["message"]
    assert "wait_s" in negative["message"]
    assert "prompt" in missing["message"]
    assert await streams(emu) == []  # nothing reached a vendor


async def test_a_job_survives_a_restart_with_a_persistent_store(emu, tmp_path):
    store = f"sqlite:///{tmp_path / 'events.db'}"
    emu.set_behaviour("anthropic", ttft_ms=500, reply="Persisted answer.")
    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path, "--store", store)) as client:
            started = ok(await client.call_tool("ask", {"prompt": "hi", "models": ["claude"], "wait_s": 0}))
            assert started["status"] == "running"
            done = ok(await client.call_tool("job", {"job_id": started["job_id"], "wait_s": 60}))
            assert done["status"] == "done"
        # A new process: the job is known only through the store.
        async with Client(orchestrator(emu, tmp_path, "--store", store)) as client:
            again = ok(await client.call_tool("job", {"job_id": started["job_id"]}))
            cancel_after = ok(await client.call_tool("cancel", {"job_id": started["job_id"]}))
    assert again["status"] == "done" and again["winner"] == "claude" and again["job_id"] == started["job_id"]
    assert next(leg for leg in again["legs"] if leg["source"] == "claude")["text"] == "Persisted answer."
    assert cancel_after["status"] == "done"  # cancelling a finished job changes nothing
    assert len(await streams(emu)) == 1  # reading it back asked no model again


@pytest.mark.skipif(PTY_MISSING, reason="the PTY runner server (llmmixer.servers.pty_runner.__main__) is not there yet")
async def test_run_command_returns_the_result_or_a_job(emu, tmp_path):
    with anyio.fail_after(90):
        async with Client(orchestrator(emu, tmp_path)) as client:
            quick = ok(await client.call_tool("run_command", {"command": "echo hello-from-pty",
                                                              "cwd": str(tmp_path)}))
            slow = ok(await client.call_tool("run_command", {"command": "sleep 3; echo finished", "wait_s": 0.5}))
            assert slow["status"] == "running"
            done = ok(await client.call_tool("job", {"job_id": slow["job_id"], "wait_s": 60}))
            empty = error_of(await client.call_tool("run_command", {"command": " "}))
    assert quick["status"] == "done" and quick["exit_code"] == 0 and "hello-from-pty" in quick["output"]
    assert done["status"] == "done" and done["exit_code"] == 0 and "finished" in done["output"]
    assert empty["kind"] == "invalid_input"
