"""Issue 24 item 6: a key with stray whitespace works, a key no HTTP header can carry is an ``auth`` error naming
its variable, and no form of a key (raw, stripped, escaped) ever reaches a result.

Each adapter runs as an MCP server (over real stdio for the working key), with the official SDK talking HTTP to
the emulator.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest
from adapter_support import error_of, generate
from adapter_vendors import CASES, CASE_IDS, VendorCase
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.redact import redact_secrets

pytestmark = pytest.mark.anyio


async def call(case: VendorCase, env: dict[str, str]) -> Any:
    params = StdioServerParameters(command=sys.executable, args=case.argv(), env=env)
    with anyio.fail_after(60):
        async with Client(params) as client:
            return await client.call_tool("generate", {"prompt": "hi"})


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.e2e
async def test_a_key_with_a_trailing_newline_is_stripped_and_works(case: VendorCase, emu: Any) -> None:
    result = await call(case, server_env(emu, **{case.key_var: f"  {case.key}\r\n"}))
    assert not result.is_error, result.content[0].text
    assert result.structured_content["text"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_a_key_no_header_can_carry_is_an_auth_error_naming_the_variable_never_the_value(
        case: VendorCase, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"{case.key}\nX-Injected: 1"
    monkeypatch.setenv(case.key_var, key)
    result, _ = await generate(case.adapter())
    error = error_of(result)
    text = " ".join(block.text for block in result.content)
    assert error["kind"] == "auth" and case.key_var in error["message"]
    for form in (case.key, key, json.dumps(key)[1:-1], repr(key)[1:-1]):
        assert form not in text
    assert emu.requests(case.emulator) == []  # refused before anything was sent


def test_redaction_covers_the_raw_and_escaped_forms_of_a_key() -> None:
    key = "sk-ant-abc123XYZ\n"
    message = f"Illegal header value b'Bearer {key!r}' / {json.dumps(key)} / raw {key} / {key.encode()!r}"
    clean = redact_secrets(message, key)
    assert "abc123XYZ" not in clean and clean.count("[redacted]") >= 4
    assert redact_secrets("a known key", "k") == "a known key"  # whole tokens only
