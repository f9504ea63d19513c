"""One request per run kind (issue 20): every field of ``AskRequest``, ``CommandRequest`` and ``AgentRequest`` is
reachable from every front door that should have it, in the style of ``test_one_list.py``.

Each door is driven as a caller drives it: the CLI's real option parser (the ``llmmixer`` click command), the HTTP
API over a real socket, and the orchestrator's MCP tools through an MCP client. Each must deliver a non-default
sample of every field to the run service. A new field without a sample here fails
``test_every_field_has_a_sample``; a door that does not carry it fails its test; a door that leaves a field out on
purpose says so in ``NOT_AT``.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import typer
from mcp import Client
from pydantic import BaseModel
from test_web_api import FakeRuns, api

from llmmixer.orchestrator import cli
from llmmixer.orchestrator.asking import AskOptions, ask_request
from llmmixer.orchestrator.mcp_server import build_server
from llmmixer.orchestrator.requests import AgentRequest, AskRequest, CommandRequest, RunRequest
from llmmixer.servers.core.errors import InvalidInputError

pytestmark = pytest.mark.anyio

# field -> the sample every JSON door sends (HTTP body, MCP arguments)
JSON_SAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    AskRequest: {
        "prompt": "the prompt", "models": ["gpt", "claude"], "mode": "hedge", "system": "be brief",
        "conversation_id": "c0nversation", "continue_latest": True, "model_ids": ["gpt-5", "opus"],
        "response_schema": "name, age int", "model_for": {"claude": "claude-x"},
        "max_tokens": 77, "temperature": 0.25, "reasoning": "low",
        "images": [{"url": "https://example.com/a.png"}], "aggregator": "gpt", "rounds": 3, "min_answers": 2,
        "deadline_s": 12.5, "messages": [{"role": "user", "content": "earlier"}], "tools": [{"name": "lookup"}],
        "tool_choice": "required", "max_cost_usd": 0.5,
    },
    CommandRequest: {"command": "echo hi", "cwd": "/tmp", "timeout_s": 9.0},
    AgentRequest: {"task": "fix it", "check": "make test", "agents": ["codex"], "mode": "all", "cwd": "/repo",
                   "timeout_s": 30.0, "apply": True, "keep": True, "setup": "npm ci",
                   "pick": "best", "grace_s": 5.0, "judge": "gpt", "model": "race/claude,gpt", "base": "worktree",
                   "max_cost_usd": 0.25, "continue_run": "0123456789abcdef"},
}
# the same samples as CLI arguments: (the command, with its group if it has one; its argv)
CLI_SAMPLES: dict[type[BaseModel], tuple[str, list[str]]] = {
    AskRequest: ("ask", ["the prompt", "--models", "gpt,claude", "--mode", "hedge", "--system", "be brief",
                         "--cid", "c0nversation", "-c", "-m", "gpt-5", "-m", "opus", "--schema", "name, age int",
                         "--model-for", "claude=claude-x",
                         "--max-tokens", "77", "--temperature", "0.25", "--reasoning", "low",
                         "--image", "/tmp/a.png", "--aggregator", "gpt", "--rounds", "3", "--min-answers", "2",
                         "--deadline", "12.5", "--max-cost", "0.5"]),
    CommandRequest: ("run", ["echo hi", "--cwd", "/tmp", "--timeout", "9"]),
    AgentRequest: ("agent run", ["fix it", "--check", "make test", "--agents", "codex", "--mode", "all",
                             "--cwd", "/repo", "--timeout", "30", "--apply", "--keep", "--setup", "npm ci",
                             "--pick", "best", "--grace", "5", "--judge", "gpt", "--model", "race/claude,gpt",
                             "--base", "worktree", "--max-cost", "0.25"]),
}
# what a door delivers differently from the JSON sample, on purpose
CLI_DIFFERS: dict[tuple[type[BaseModel], str], Any] = {
    (AskRequest, "images"): [{"path": "/tmp/a.png"}],  # the CLI names files; HTTP and MCP send URLs or base64
}
# fields a door does not carry, with the reason
_TURNS = "a conversation's own turns and tools: for API callers (the gateway's dialects, HTTP)"
NOT_AT: dict[str, dict[tuple[type[BaseModel], str], str]] = {
    "cli": {**{(AskRequest, field): _TURNS + "; the CLI continues a conversation with -c/--cid"
               for field in ("messages", "tools", "tool_choice")},
            (AgentRequest, "continue_run"): "its own command: agent continue RUN AGENT (test_agent_continue_...)"},
    "http": {},
    "mcp": {**{(AskRequest, field): _TURNS + "; an MCP host brings its own (mcp_server.NOT_ON_MCP)"
               for field in ("messages", "tools", "tool_choice")},
            (AskRequest, "continue_latest"): "a host passes conversation_id back: the newest conversation of a "
                                             "shared service may be another client's"},
}
# the CLI's field mappers: the command's options -> the request's fields
CLI_FIELDS = {AskRequest: cli.ask_fields, CommandRequest: cli.command_fields, AgentRequest: cli.agent_fields}
# the CLI's own options, which are not request fields
CLI_ONLY = {"as_json", "data_only", "config", "store", "standalone"}

MODELS = list(JSON_SAMPLES)


class Recorder(FakeRuns):
    """Records the request a door hands the run service; its snapshots read as MCP job results."""

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        return {**await super().snapshot(run_id), "job_id": run_id}
HTTP_PATHS = {AskRequest: "/api/runs", CommandRequest: "/api/commands", AgentRequest: "/api/agents"}
MCP_TOOLS = {AskRequest: "ask", CommandRequest: "run_command", AgentRequest: "agent"}


def _expected(model: type[BaseModel], sample: dict[str, Any]) -> dict[str, Any]:
    return model.model_validate(sample).model_dump()


def _check(door: str, model: type[BaseModel], got: BaseModel, sample: dict[str, Any]) -> None:
    assert type(got) is model or isinstance(got, model)
    expected, delivered = _expected(model, sample), got.model_dump()
    for name in model.model_fields:
        if (model, name) in NOT_AT[door]:
            continue
        assert delivered[name] == expected[name], f"{door} does not carry {model.__name__}.{name}"
        assert delivered[name] != model.model_fields[name].get_default(call_default_factory=True), \
            f"the sample of {model.__name__}.{name} is its default: it proves nothing"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_sample(model: type[BaseModel]) -> None:
    assert set(JSON_SAMPLES[model]) == set(model.model_fields)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_cli_carries_every_field(model: type[BaseModel]) -> None:
    name, argv = CLI_SAMPLES[model]
    command: Any = typer.main.get_command(cli.app)
    for word in name.split():  # a subcommand of a group: "agent run"
        command = command.commands[word]
    params = command.make_context(name, list(argv)).params
    mapper = CLI_FIELDS[model]
    taken = set(inspect.signature(mapper).parameters)
    # every option of the command is a request field or one of the CLI's own
    assert set(params) - CLI_ONLY - {"prompt"} <= taken, "a CLI option that reaches no request field"
    fields = mapper(**{key: value for key, value in params.items() if key in taken})
    if model is AskRequest:
        got: BaseModel = ask_request(params["prompt"], AskOptions(fields=fields))
    else:
        got = model.model_validate(fields)
    sample = {**JSON_SAMPLES[model], **{field: value for (m, field), value in CLI_DIFFERS.items() if m is model}}
    _check("cli", model, got, {k: v for k, v in sample.items() if (model, k) not in NOT_AT["cli"]})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
async def test_http_carries_every_field(model: type[BaseModel]) -> None:
    async with api() as (client, runs):
        response = await client.post(HTTP_PATHS[model], json=JSON_SAMPLES[model])
        assert response.status_code == 202, response.text
        _check("http", model, runs.request, JSON_SAMPLES[model])


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
async def test_mcp_carries_every_field(model: type[BaseModel]) -> None:
    runs = Recorder()
    async with Client(build_server(runs)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        properties = set(tools[MCP_TOOLS[model]].input_schema["properties"])
        left_out = {f for (m, f) in NOT_AT["mcp"] if m is model}
        assert set(model.model_fields) - left_out <= properties and not left_out & properties
        arguments = {k: v for k, v in JSON_SAMPLES[model].items() if k not in left_out}
        result = await client.call_tool(MCP_TOOLS[model], {**arguments, "wait_s": 0})
        assert not result.is_error, result.content
    _check("mcp", model, runs.request, arguments)


async def test_every_door_refuses_a_bad_value_with_the_same_classified_error() -> None:
    """``rounds`` is checked once, in the model; each door reports it as ``invalid_input``."""
    bad = {"prompt": "q", "rounds": 9}
    with pytest.raises(InvalidInputError, match="rounds"):
        ask_request("q", AskOptions(fields={"rounds": 9}))
    async with api() as (client, runs):
        response = await client.post("/api/runs", json=bad)
        assert response.status_code == 400 and response.json()["error"]["kind"] == "invalid_input"
        assert "rounds" in response.json()["error"]["message"] and not runs.calls
    runs = Recorder()
    async with Client(build_server(runs)) as client:
        result = await client.call_tool("ask", bad)
    assert result.is_error and "invalid_input" in result.content[0].text and "rounds" in result.content[0].text
    assert not runs.calls


def test_agent_continue_carries_its_fields() -> None:
    """``agent continue RUN AGENT FOLLOW-UP`` is an agent request continuing that run's leg."""
    command: Any = typer.main.get_command(cli.app).commands["agent"].commands["continue"]
    argv = ["0123456789abcdef", "codex", "and the tests", "--check", "make test", "--cwd", "/repo", "--timeout", "30",
            "--setup", "npm ci"]
    params = command.make_context("continue", argv).params
    taken = set(inspect.signature(cli.continue_fields).parameters)
    assert set(params) - CLI_ONLY <= taken, "a CLI option that reaches no request field"
    got = AgentRequest.model_validate(cli.continue_fields(**{k: v for k, v in params.items() if k in taken}))
    assert got == AgentRequest(task="and the tests", check="make test", agents=["codex"], cwd="/repo", timeout_s=30,
                               setup="npm ci", continue_run="0123456789abcdef")


def test_run_request_is_every_kind() -> None:
    assert set(RunRequest.__args__) == set(MODELS)  # type: ignore[attr-defined]
