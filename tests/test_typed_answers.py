"""Typed answers through every interface: ``ask --schema`` (JSON, a file, llm's concise form), ``POST /api/runs``
and the MCP ``ask`` tool. In each race the fastest vendor breaks the format (plain text where JSON was asked), ends
``invalid_output`` and cannot win; the next one answers valid JSON and wins, and its value is the result's ``data``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import server_env
from mcp import Client, StdioServerParameters
from test_cli import llmmixer

from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.schemas import concise_schema, parse_schema
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.servers.core.errors import InvalidInputError

PERSON = {"name": "Ada Lovelace", "age": 36, "bio": "Wrote the first program."}
CONCISE = "name, age int, bio: one sentence"


def script_a_typed_race(emu: Any) -> None:
    """Claude answers first but in prose; GPT answers valid JSON next; Gemini would be last."""
    emu.set_behaviour("anthropic", ttft_ms=10, ignore_schema=True, reply="Sure! Ada Lovelace, 36, a programmer.")
    emu.set_behaviour("openai", ttft_ms=400, reply_json=PERSON)
    emu.set_behaviour("gemini", ttft_ms=4000, reply_json=PERSON)


def check_typed_race(result: dict[str, Any], emu: Any, *, cold: bool = False) -> None:
    """``cold``: the servers start in this very command, and claude's loads its SDK on this first call, which may
    take longer than gpt's answer: then claude is cancelled before its prose arrives, and still never wins."""
    legs = {leg["source"]: leg for leg in result["legs"]}
    if not (cold and legs["claude"]["status"] == "cancelled"):
        assert legs["claude"]["status"] == "error" and legs["claude"]["error"]["kind"] == "invalid_output", legs
    assert result["winner"] == "gpt" and legs["gpt"]["status"] == "won"
    assert result["data"] == PERSON and legs["gpt"]["data"] == PERSON
    assert legs["gemini"]["status"] == "cancelled"
    # Each vendor was asked for its native structured output with the schema.
    assert "age" in json.dumps(emu.requests("openai")[-1]["body"]["text"]["format"])
    if emu.requests("anthropic"):
        assert "age" in json.dumps(emu.requests("anthropic")[-1]["body"]["output_config"])


def test_concise_schema_reads_like_llms():
    schema = concise_schema(CONCISE)
    assert schema["properties"] == {"name": {"type": "string"}, "age": {"type": "integer"},
                                    "bio": {"type": "string", "description": "one sentence"}}
    assert schema["required"] == ["name", "age", "bio"]
    multi = concise_schema("title: the headline, with commas\nscore float\nok bool")
    assert multi["properties"]["title"]["description"] == "the headline, with commas"
    assert multi["properties"]["score"] == {"type": "number"} and multi["properties"]["ok"] == {"type": "boolean"}
    assert parse_schema('{"type": "object", "properties": {"x": {"type": "string"}}}')["properties"]["x"]
    for bad in ("age integr", "", "1abc", '{"type": 12}'):
        with pytest.raises(InvalidInputError):
            parse_schema(bad)


@pytest.mark.e2e
def test_cli_typed_race_with_concise_and_file_schemas(emu, tmp_path: Path):
    script_a_typed_race(emu)
    done = llmmixer("ask", "Describe Ada Lovelace", "--schema", CONCISE, "--json", "--store", "memory",
                    env=server_env(emu))
    assert done.returncode == 0, done.stderr
    check_typed_race(json.loads(done.stdout), emu, cold=True)

    schema_file = tmp_path / "person.json"
    schema_file.write_text(json.dumps(concise_schema(CONCISE)))
    emu.reset()
    script_a_typed_race(emu)
    data = llmmixer("ask", "Describe Ada Lovelace", "--schema", str(schema_file), "--data", "--store", "memory",
                    env=server_env(emu))
    assert data.returncode == 0, data.stderr
    assert json.loads(data.stdout) == PERSON  # --data prints the typed value and nothing else

    bad = llmmixer("ask", "x", "--schema", "age integr", env=server_env(emu))
    assert bad.returncode == 2 and "unknown type" in bad.stderr


@pytest.mark.anyio
async def test_http_api_typed_race(emu):
    script_a_typed_race(emu)
    async with Runs(Config(servers=default_servers(inprocess=True)), open_store("memory")) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini"])
        async with running(create_app(runs, runs.store)) as url, httpx2.AsyncClient(base_url=url, timeout=60) as c:
            started = await c.post("/api/runs", json={"prompt": "Describe Ada", "response_schema": CONCISE})
            assert started.status_code == 202, started.text
            result = (await c.get(f"/api/runs/{started.json()['run_id']}", params={"wait": 30})).json()
            check_typed_race(result, emu)
            refused = await c.post("/api/runs", json={"prompt": "x", "response_schema": {"type": 5}})
            assert refused.status_code == 400 and refused.json()["error"]["kind"] == "invalid_input"

            # The history lists it from the run log, with its prompt, paginated and searchable.
            again = await c.post("/api/runs", json={"prompt": "Describe Grace", "models": "gpt",
                                                    "conversation_id": started.json()["conversation_id"]})
            await c.get(f"/api/runs/{again.json()['run_id']}", params={"wait": 30})
            page = (await c.get("/api/runs", params={"limit": 1})).json()
            assert [r["prompt"] for r in page["runs"]] == ["Describe Grace"] and page["next_offset"] == 1
            rest = (await c.get("/api/runs", params={"limit": 1, "offset": 1})).json()
            assert [r["prompt"] for r in rest["runs"]] == ["Describe Ada"]
            assert rest["runs"][0]["winner"] == "gpt" and rest["runs"][0]["status"] == "done"
            found = (await c.get("/api/runs", params={"q": "grace"})).json()["runs"]
            assert [r["run_id"] for r in found] == [again.json()["run_id"]]
            thread = (await c.get("/api/runs", params={"conversation_id": started.json()["conversation_id"]})).json()
            assert len(thread["runs"]) == 2 and again.json()["conversation_id"] == started.json()["conversation_id"]


@pytest.mark.e2e
@pytest.mark.anyio
async def test_mcp_ask_typed_race(emu, tmp_path: Path):
    params = StdioServerParameters(command=script_path("llmmixer"), args=["mcp"], env=server_env(emu),
                                   cwd=str(tmp_path))
    with anyio.fail_after(120):
        async with Client(params) as client:
            await client.call_tool("ask", {"prompt": "warm up", "mode": "all"})  # start every adapter first
            emu.reset()
            script_a_typed_race(emu)
            result = await client.call_tool("ask", {"prompt": "Describe Ada",
                                                    "response_schema": concise_schema(CONCISE)})
    assert not result.is_error, result.content
    check_typed_race(result.structured_content, emu)
