"""Scripted agent turns in each vendor's own wire format, read back through the official SDKs over real HTTP."""

from __future__ import annotations

import json

import httpx2
import pytest

from llmmixer.servers.emulators.server import EmulatorServer
from tests.conftest import FAKE_KEYS

SHELL = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
TURNS = [{"say": "Let me look.", "tool": "shell", "args": {"command": "ls -la"}}, {"say": "All done."}]


def test_anthropic_tool_use_then_text_records_the_result(emu: EmulatorServer) -> None:
    import anthropic

    emu.set_script("anthropic", TURNS)
    client = anthropic.Anthropic(api_key=FAKE_KEYS["ANTHROPIC_API_KEY"], base_url=emu.env["ANTHROPIC_BASE_URL"])
    tools = [{"name": "shell", "description": "run", "input_schema": SHELL}]
    messages: list[dict] = [{"role": "user", "content": "list files"}]
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=500, messages=messages,
                                tools=tools) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert call.name == "shell" and call.input == {"command": "ls -la"}
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "total 0"}]}]
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=500, messages=messages,
                                tools=tools) as stream:
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn" and second.content[0].text == "All done."
    results = emu.tool_results("anthropic")
    assert [(r["call_id"], r["name"], r["output"]) for r in results] == [(call.id, "shell", "total 0")]
    # Without tools the same conversation is not scripted: the default reply.
    plain = client.messages.create(model="claude-sonnet-4-6", max_tokens=500, messages=[messages[0]])
    assert plain.content[0].text != "Let me look."
    assert client.messages.count_tokens(model="claude-sonnet-4-6", messages=messages).input_tokens > 0


def test_openai_responses_function_call(emu: EmulatorServer) -> None:
    import openai

    emu.set_script("openai", TURNS)
    client = openai.OpenAI(api_key=FAKE_KEYS["OPENAI_API_KEY"], base_url=emu.env["OPENAI_BASE_URL"])
    tools = [{"type": "function", "name": "shell", "parameters": SHELL}]
    with client.responses.stream(model="gpt-5", input="list files", tools=tools) as stream:
        kinds = {event.type for event in stream}
        first = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "shell" and json.loads(call.arguments) == {"command": "ls -la"}
    assert first.output_text == "Let me look."
    history = [{"role": "user", "content": "list files"}, *[item.model_dump() for item in first.output],
               {"type": "function_call_output", "call_id": call.call_id, "output": "total 0"}]
    with client.responses.stream(model="gpt-5", input=history, tools=tools) as stream:
        second = stream.get_final_response()
    assert second.output_text == "All done."
    assert [(r["name"], r["output"]) for r in emu.tool_results("openai")] == [("shell", "total 0")]


def test_openai_chat_tool_calls(emu: EmulatorServer) -> None:
    import openai

    emu.set_script("openai", TURNS)
    client = openai.OpenAI(api_key=FAKE_KEYS["OPENAI_API_KEY"], base_url=emu.env["OPENAI_BASE_URL"])
    tools = [{"type": "function", "function": {"name": "shell", "parameters": SHELL}}]
    messages: list[dict] = [{"role": "user", "content": "list files"}]
    with client.chat.completions.stream(model="gpt-5", messages=messages, tools=tools) as stream:
        first = stream.get_final_completion()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "shell" and json.loads(call.function.arguments) == {"command": "ls -la"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "total 0"}]
    with client.chat.completions.stream(model="gpt-5", messages=messages, tools=tools) as stream:
        second = stream.get_final_completion()
    assert second.choices[0].message.content == "All done."
    assert [(r["call_id"], r["name"]) for r in emu.tool_results("openai")] == [(call.id, "shell")]


def test_gemini_function_call_and_upper_case_schema(emu: EmulatorServer) -> None:
    from google import genai
    from google.genai import types

    emu.set_script("gemini", TURNS)
    client = genai.Client(api_key=FAKE_KEYS["GEMINI_API_KEY"],
                          http_options=types.HttpOptions(base_url=emu.env["GOOGLE_GEMINI_BASE_URL"]))
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="shell", parameters_json_schema=SHELL)])
    config = types.GenerateContentConfig(tools=[tool],
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(
                                             disable=True))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="list files",
                                                        config=config))
    calls = [part.function_call for chunk in chunks for part in chunk.candidates[0].content.parts
             if part.function_call]
    assert [(c.name, c.args) for c in calls] == [("shell", {"command": "ls -la"})]
    contents = [types.Content(role="user", parts=[types.Part(text="list files")]),
                types.Content(role="model", parts=[types.Part(function_call=calls[0])]),
                types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
                    id=calls[0].id, name="shell", response={"output": "total 0"}))])]
    second = "".join(c.text or "" for c in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents=contents, config=config))
    assert second == "All done."
    assert [(r["name"], json.loads(r["output"])) for r in emu.tool_results("gemini")] == \
        [("shell", {"output": "total 0"})]
    # Gemini CLI's router: a schema in Gemini's upper-case dialect gets an object that satisfies it.
    routed = client.models.generate_content(model="gemini-2.5-flash-lite", contents="rate this", config={
        "response_mime_type": "application/json",
        "response_json_schema": {"type": "OBJECT", "properties": {"reasoning": {"type": "STRING"},
                                                                  "score": {"type": "INTEGER"}},
                                 "required": ["reasoning", "score"]}})
    value = json.loads(routed.text)
    assert isinstance(value["reasoning"], str) and isinstance(value["score"], int)
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="hello").total_tokens > 0


def test_bad_scripts_and_unknown_paths(emu: EmulatorServer) -> None:
    with pytest.raises(httpx2.HTTPStatusError):
        emu.set_script("anthropic", [{"args": {"x": 1}}])
    with pytest.raises(httpx2.HTTPStatusError):
        emu.set_script("anthropic", [])
    response = httpx2.post(f"{emu.root}/anthropic/v1/unknown", json={})
    assert response.status_code == 404
    assert [(r["vendor"], r["path"]) for r in emu.requests() if r["outcome"] == "unserved"] == \
        [("unserved", "/anthropic/v1/unknown")]
