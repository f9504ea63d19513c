"""Hostile or malformed input at the HTTP front door (issue 12, item 6): every case is a classified 4xx JSON
error, nothing reaches the run service, and no traceback leaks. Plus the one-line usage error for a malformed
``LLMMIXER_*`` number in the environment.
"""

from __future__ import annotations

import subprocess

import pytest
from conftest import PYTHON, server_env
from test_web_api import FakeRuns, api, assert_alive, assert_error

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion limit
    b'{"prompt": "hi", "models": ' + b"[" * 40 + b"]" * 40 + b"}",  # parses, but deeper than we accept
    b'{"prompt": "hi", "timeout": ' + b"7" * 5000 + b"}",  # past Python's integer digit limit
    b'{"command": "ls", "timeout_s": ' + b"9" * 5000 + b".5}",  # a float that overflows to inf
])
async def test_nested_or_huge_json_is_400_invalid_input(body: bytes) -> None:
    async with api() as (client, runs):
        for path in ("/api/runs", "/api/commands"):
            response = await client.post(path, content=body, headers=JSON)
            error = assert_error(response, 400, "invalid_input")
            assert "Traceback" not in response.text and len(error["message"]) < 400
        assert runs.calls == []
        await assert_alive(client)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_a_cross_site_style_post_cannot_start_a_command(content_type: str | None) -> None:
    """What a cross-site form or a no-cors fetch can send (no Origin header, a simple content type) is refused
    before it reaches the service; the same body with the dashboard's header or a JSON type goes through."""
    body = b'{"command": "touch /tmp/pwned"}'
    headers = {"content-type": content_type} if content_type else {}
    async with api() as (client, runs):
        for path in ("/api/commands", "/api/runs"):
            refused = await client.post(path, content=body, headers=headers)
            assert "X-LLMMixer" in assert_error(refused, 403, "permission")["message"]
        assert_error(await client.post("/api/runs/run1/cancel", headers=headers), 403, "permission")
        assert runs.calls == []
        marked = await client.post("/api/commands", content=body, headers={**headers, "X-LLMMixer": "1"})
        assert marked.status_code == 202
        typed = await client.post("/api/commands", content=body, headers=JSON)
        assert typed.status_code == 202
        assert [kind for kind, _ in runs.calls] == ["command", "command"]


async def test_get_requests_need_no_marker() -> None:
    async with api(FakeRuns()) as (client, _):
        assert (await client.get("/api/servers")).status_code == 200
        assert (await client.get("/api/runs")).status_code == 200


@pytest.mark.parametrize(("command", "name", "value"), [
    ([PYTHON, "-m", "llmmixer.servers.claude_adapter"], "LLMMIXER_MAX_RETRIES", "abc"),
    ([PYTHON, "-m", "llmmixer.servers.gpt_adapter", "--transport", "streamable-http", "--port", "0"],
     "LLMMIXER_TIMEOUT_S", "nan"),
    ([PYTHON, "-m", "llmmixer.servers.gemini_adapter"], "LLMMIXER_MAX_PROMPT_BYTES", "1.5"),
    ([PYTHON, "-m", "llmmixer.orchestrator.cli", "ask", "hi"], "LLMMIXER_MAX_RETRIES", "-1"),
    ([PYTHON, "-m", "llmmixer.orchestrator.cli", "serve", "--port", "0"], "LLMMIXER_TIMEOUT_S", "soon"),
    ([PYTHON, "-m", "llmmixer.orchestrator.cli", "mcp"], "LLMMIXER_MAX_RETRIES", "2.0"),
])
@pytest.mark.e2e
def test_a_malformed_env_number_is_a_one_line_usage_error(command: list[str], name: str, value: str) -> None:
    done = subprocess.run(command, env=server_env(**{name: value}), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert name in lines[0] and repr(value) in lines[0]
