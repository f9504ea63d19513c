"""The gateway through the vendors' own SDKs: each dialect on a real ``serve`` app, its legs real adapter servers
over stdio, their SDKs real HTTP to the emulators' scripted tool-call turns. In each tool test the winning leg is
of a different vendor than the client's dialect, so the tools and the call are translated both ways."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest
from gateway_support import SHELL_SCHEMA, TOKEN, TURNS, gateway

from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio

OPENAI_TOOLS = [{"type": "function", "function": {"name": "shell", "description": "Run a shell command",
                                                  "parameters": SHELL_SCHEMA}}]


def closed_by_client(emu: EmulatorServer, vendor: str) -> list[dict[str, Any]]:
    return [r for r in emu.requests(vendor) if r["method"] == "POST" and r["outcome"] == "client_closed"]


async def settle(probe: Any, timeout_s: float = 20.0) -> Any:
    with anyio.fail_after(timeout_s):
        while not (value := probe()):
            await anyio.sleep(0.02)
        return value


async def test_openai_chat_streams_a_claude_tool_call_and_closes_the_losing_leg(emu: EmulatorServer) -> None:
    import openai

    emu.set_script("anthropic", TURNS)
    emu.set_behaviour("anthropic", ttft_ms=1000)  # time for the loser's request to reach its vendor
    emu.set_behaviour("gemini", hang=True)  # the loser: it never answers, and must be cut off
    async with gateway() as gw, openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gw.url}/v1", max_retries=0) as client:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "list files"}]
        stream = await client.chat.completions.create(model="race/claude,gemini", messages=messages,
                                                      tools=OPENAI_TOOLS, stream=True,
                                                      stream_options={"include_usage": True})
        text, calls, finish, usage = [], {}, None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                for piece in choice.delta.tool_calls or []:
                    entry = calls.setdefault(piece.index, {"id": piece.id, "name": None, "arguments": ""})
                    entry["name"] = piece.function.name or entry["name"]
                    entry["arguments"] += piece.function.arguments or ""
                finish = choice.finish_reason or finish
        assert "".join(text) == "Let me look."
        assert finish == "tool_calls"
        [call] = calls.values()
        assert call["name"] == "shell" and json.loads(call["arguments"]) == {"command": "ls -la"}
        assert call["id"].startswith("toolu_")  # Claude's own id, carried through
        assert usage is not None and usage.completion_tokens > 0
        await settle(lambda: closed_by_client(emu, "gemini"))

        # The next turn carries the result; Claude gets it as a tool_result block and says its second turn.
        messages += [{"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": "shell", "arguments": call["arguments"]}}]},
            {"role": "tool", "tool_call_id": call["id"], "content": "total 0"}]
        reply = await client.chat.completions.with_raw_response.create(model="race/claude,gemini",
                                                                        messages=messages, tools=OPENAI_TOOLS)
        whole = reply.parse()
        assert whole.choices[0].message.content == "All done."
        assert whole.choices[0].finish_reason == "stop"
        assert whole.model.startswith("claude")
        assert reply.headers["x-llmmixer-winner"] == "claude"
        run_id = reply.headers["x-llmmixer-run-id"]
        assert float(reply.headers["x-llmmixer-cost-usd"]) > 0
        [seen] = emu.tool_results("anthropic")
        assert seen["call_id"] == call["id"] and seen["output"] == "total 0"
        # Every call is a run: its legs, winner and cost are in the run service's record. The answer went out with
        # the winner, so the run may still be closing its loser: its whole cost is at least what the header said.
        assert await gw.runs.wait(run_id, 30)
        snapshot = await gw.runs.snapshot(run_id)
        assert snapshot["winner"] == "claude" and snapshot["mode"] == "race" and snapshot["status"] == "done"
        assert {leg["source"]: leg["status"] for leg in snapshot["legs"]} == {"claude": "won", "gemini": "cancelled"}
        claude_cost = next(leg["cost_usd"] for leg in snapshot["legs"] if leg["source"] == "claude")
        assert claude_cost - 1e-9 <= float(reply.headers["x-llmmixer-cost-usd"]) <= snapshot["total_cost_usd"] + 1e-9


async def test_openai_responses_streams_a_gemini_tool_call(emu: EmulatorServer) -> None:
    import openai

    emu.set_script("gemini", TURNS)
    async with gateway() as gw, openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gw.url}/v1", max_retries=0) as client:
        tools = [{"type": "function", "name": "shell", "description": "Run a shell command",
                  "parameters": SHELL_SCHEMA}]
        async with client.responses.stream(model="gemini", input="list files", tools=tools) as stream:
            kinds = [event.type async for event in stream]
            first = await stream.get_final_response()
        assert "response.output_text.delta" in kinds and "response.function_call_arguments.delta" in kinds
        assert first.output_text == "Let me look."
        call = next(item for item in first.output if item.type == "function_call")
        assert call.name == "shell" and json.loads(call.arguments) == {"command": "ls -la"}
        assert first.model.startswith("gemini")
        history = [{"role": "user", "content": "list files"}, *[item.model_dump() for item in first.output],
                   {"type": "function_call_output", "call_id": call.call_id, "output": "total 0"}]
        second = await client.responses.create(model="gemini", input=history, tools=tools)
        assert second.output_text == "All done."
        [seen] = emu.tool_results("gemini")
        assert seen["name"] == "shell" and "total 0" in seen["output"]


async def test_anthropic_messages_stream_a_gpt_tool_call_and_count_tokens(emu: EmulatorServer) -> None:
    import anthropic

    emu.set_script("openai", TURNS)
    async with gateway() as gw, anthropic.AsyncAnthropic(api_key=TOKEN, base_url=gw.url, max_retries=0) as client:
        tools = [{"name": "shell", "description": "Run a shell command", "input_schema": SHELL_SCHEMA}]
        messages: list[dict[str, Any]] = [{"role": "user", "content": "list files"}]
        async with client.messages.stream(model="fallback/gpt,claude", max_tokens=500, messages=messages,
                                          tools=tools) as stream:
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use"
        assert [block.type for block in first.content] == ["text", "tool_use"]
        call = first.content[1]
        assert call.name == "shell" and call.input == {"command": "ls -la"}
        assert call.id.startswith("call_")  # GPT's own id, carried through
        assert first.model.startswith("gpt")
        messages += [{"role": "assistant", "content": [block.model_dump() for block in first.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                   "content": "total 0"}]}]
        second = await client.messages.create(model="fallback/gpt,claude", max_tokens=500, messages=messages,
                                              tools=tools)
        assert second.stop_reason == "end_turn" and second.content[0].text == "All done."
        [seen] = emu.tool_results("openai")
        assert seen["call_id"] == call.id and seen["output"] == "total 0"
        counted = await client.messages.count_tokens(model="fallback/gpt,claude", messages=messages, tools=tools)
        assert counted.input_tokens > 10
    # fallback asks one leg at a time: Claude was never asked
    assert not [r for r in emu.requests("anthropic") if r["method"] == "POST"]


async def test_google_genai_streams_a_claude_tool_call_through_an_alias_and_a_spec_path(
        emu: EmulatorServer) -> None:
    from google import genai
    from google.genai import types

    emu.set_script("anthropic", TURNS)
    emu.set_behaviour("anthropic", ttft_ms=1000)  # time for the loser's request to reach its vendor
    emu.set_behaviour("openai", hang=True)
    async with gateway(aliases={"fast": "race/claude,gpt"}) as gw, genai.Client(
            api_key=TOKEN, http_options=types.HttpOptions(base_url=gw.url)).aio as client:
        # Gemini's own schema dialect: upper-case types
        tool = types.Tool(function_declarations=[types.FunctionDeclaration(
            name="shell", description="Run a shell command", parameters=types.Schema(
                type="OBJECT", properties={"command": types.Schema(type="STRING")}, required=["command"]))])
        config = types.GenerateContentConfig(tools=[tool], automatic_function_calling={"disable": True})
        for model in ("fast", "race/claude,gpt"):
            text, calls = [], []
            async for chunk in await client.models.generate_content_stream(model=model, contents="list files",
                                                                               config=config):
                for part in chunk.candidates[0].content.parts or []:
                    if part.function_call:
                        calls.append(part.function_call)
                    elif part.text:
                        text.append(part.text)
            assert "".join(text) == "Let me look."
            [call] = calls
            assert call.name == "shell" and call.args == {"command": "ls -la"} and call.id.startswith("toolu_")
        sent = [r for r in emu.requests("anthropic") if r["method"] == "POST"][-1]["body"]
        assert sent["tools"][0]["input_schema"]["properties"]["command"]["type"] == "string"
        contents = [types.Content(role="user", parts=[types.Part(text="list files")]),
                    types.Content(role="model", parts=[types.Part(text="Let me look."),
                                                       types.Part(function_call=call)]),
                    types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
                        name="shell", response={"output": "total 0"}))])]  # no id: matched by name
        whole = await client.models.generate_content(model="fast", contents=contents, config=config)
        assert whole.text == "All done."
        assert whole.model_version.startswith("claude")
        [seen] = emu.tool_results("anthropic")
        assert seen["call_id"] == call.id and seen["output"] == "total 0"
        counted = await client.models.count_tokens(model="fast", contents="list files")
        assert counted.total_tokens > 0
        await settle(lambda: len(closed_by_client(emu, "openai")) >= 3)


async def test_models_are_listed_in_each_dialect(emu: EmulatorServer) -> None:
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    async with (gateway(aliases={"fast": "race/claude,gpt"}) as gw,
                openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gw.url}/v1", max_retries=0) as oai,
                anthropic.AsyncAnthropic(api_key=TOKEN, base_url=gw.url, max_retries=0) as ant,
                genai.Client(api_key=TOKEN, http_options=types.HttpOptions(base_url=gw.url)).aio as gem):
        ids = [model.id async for model in oai.models.list()]
        assert ids[0] == "fast" and "gpt-5" in ids and any(i.startswith("claude") for i in ids)
        assert [model.id async for model in ant.models.list()][0] == "fast"
        names = [model.name async for model in await gem.models.list()]
        assert "models/fast" in names and any(n.startswith("models/gemini") for n in names)


async def test_errors_come_back_in_each_dialect(emu: EmulatorServer) -> None:
    import anthropic
    import openai
    from google import genai
    from google.genai import errors as genai_errors, types

    async with (gateway() as gw,
                openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gw.url}/v1", max_retries=0) as oai,
                anthropic.AsyncAnthropic(api_key=TOKEN, base_url=gw.url, max_retries=0) as ant,
                genai.Client(api_key=TOKEN, http_options=types.HttpOptions(base_url=gw.url)).aio as gem,
                openai.AsyncOpenAI(api_key="wrong", base_url=f"{gw.url}/v1", max_retries=0) as oai_wrong,
                anthropic.AsyncAnthropic(api_key="wrong", base_url=gw.url, max_retries=0) as ant_wrong,
                genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=gw.url)).aio as gem_wrong):
        hi = [{"role": "user", "content": "hi"}]
        # unknown model: 404
        with pytest.raises(openai.NotFoundError):
            await oai.chat.completions.create(model="no-such-model", messages=hi)
        with pytest.raises(anthropic.NotFoundError) as ant_missing:
            await ant.messages.create(model="no-such-model", max_tokens=10, messages=hi)
        assert ant_missing.value.body["error"]["type"] == "not_found_error"
        with pytest.raises(genai_errors.ClientError) as gem_missing:
            await gem.models.generate_content(model="no-such-model", contents="hi")
        assert gem_missing.value.code == 404 and gem_missing.value.status == "NOT_FOUND"
        # wrong token: 401
        with pytest.raises(openai.AuthenticationError):
            await oai_wrong.models.list()
        with pytest.raises(anthropic.AuthenticationError):
            await ant_wrong.messages.create(model="claude", max_tokens=10, messages=hi)
        with pytest.raises(genai_errors.ClientError) as gem_auth:
            await gem_wrong.models.generate_content(model="claude", contents="hi")
        assert gem_auth.value.code == 401
        # a bad request names the field
        async with httpx2.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {TOKEN}"}) as http:
            for path, body, field in (("/v1/chat/completions", {"model": "claude"}, "messages"),
                                      ("/v1/messages", {"model": "claude", "messages": hi, "max_tokens": 0},
                                       "max_tokens"),
                                      ("/v1/responses", {"model": "claude"}, "input"),
                                      ("/v1/chat/completions", {"model": "claude", "messages": [
                                          {"role": "tool", "content": "x"}]}, "tool_call_id"),
                                      ("/v1beta/models/claude:generateContent", {"contents": "hi"}, "contents")):
                response = await http.post(path, json=body)
                assert response.status_code == 400, (path, response.text)
                assert field in response.text, (path, response.text)
        # upstream rate limit with retry-after: 429 and retry-after, in the dialect's shape
        emu.set_behaviour("anthropic", error={"status": 429, "retry_after_s": 7})
        with pytest.raises(anthropic.RateLimitError) as limited:
            await ant.messages.create(model="claude", max_tokens=10, messages=hi)
        assert limited.value.response.headers["retry-after"] == "7"
        assert limited.value.body["error"]["type"] == "rate_limit_error"
        # upstream overloaded: Anthropic's 529
        emu.set_behaviour("anthropic", error={"status": 529})
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await ant.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=hi)
        assert overloaded.value.status_code == 529
        assert overloaded.value.body["error"]["type"] == "overloaded_error"
        # upstream server failure: 5xx naming the cause
        emu.set_behaviour("openai", error={"status": 500})
        with pytest.raises(openai.InternalServerError) as failed:
            await oai.chat.completions.create(model="gpt", messages=hi)
        assert failed.value.status_code == 502 and "gpt (openai, HTTP 500)" in str(failed.value.body)


async def test_a_leg_failing_after_bytes_went_out_ends_the_stream_with_an_error(emu: EmulatorServer) -> None:
    import anthropic
    import openai

    emu.set_behaviour("openai", tokens=8, error={"status": 500}, error_after_tokens=3)
    async with (gateway() as gw, anthropic.AsyncAnthropic(api_key=TOKEN, base_url=gw.url, max_retries=0) as ant,
                openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gw.url}/v1", max_retries=0) as oai):
        text: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as ended:
            async with ant.messages.stream(model="first-token/gpt", max_tokens=50,
                                           messages=[{"role": "user", "content": "hi"}]) as stream:
                async for piece in stream.text_stream:
                    text.append(piece)
        assert text, "some text went out before the failure"
        assert "failed after its answer had begun streaming" in str(ended.value)
        with pytest.raises(openai.APIError):
            async for _chunk in await oai.chat.completions.create(
                    model="first-token/gpt", messages=[{"role": "user", "content": "hi"}], stream=True):
                pass
