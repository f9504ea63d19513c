"""One error boundary (issue 17 item 3, issue 12 item 6): one tree whose ``kind`` decides ``retryable``, one
``retry_after_s()`` and one whole-token ``redact()`` that every adapter uses, and the MCP tool boundary that tells a
crash (``server``, with a message, traceback logged) from a bad argument (``invalid_input``).

Also the scoped streams of issue 17 item 4: a consumer that stops early closes the vendor stream at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from adapter_support import error_of, eventually, generate
from adapter_vendors import CASE_IDS, CASES, VendorCase
from mcp import Client

from llmmixer.servers.core import errors
from llmmixer.servers.core.adapter import BaseAdapter, GenerateRequest, TextDelta
from llmmixer.servers.core.mcp import LLMMixerMCPServer, package_version
from llmmixer.servers.core.results import error_result, ok_result, result_payload
from llmmixer.servers.core.stdio import FdWriter, unread_bytes_probe
from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio

RETRYABLE = {"rate_limit", "overloaded", "server", "unavailable", "timeout", "connection"}


# -- the tree ---------------------------------------------------------------------------------------------------------

def every_error_class() -> list[type[errors.LLMMixerError]]:
    found, pending = [], [errors.LLMMixerError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_retryable_follows_kind_on_every_class_and_on_the_wire() -> None:
    for cls in every_error_class():
        if cls is errors.LLMMixerError:
            continue
        assert cls.retryable == (cls.kind.value in RETRYABLE) == issubclass(cls, errors.RetryableError), cls
        wire = cls("m").to_dict()["error"]
        assert wire["retryable"] == (wire["kind"] in RETRYABLE), cls


def test_a_class_whose_kind_and_base_disagree_cannot_be_defined() -> None:
    with pytest.raises(TypeError, match="RetryableError"):
        type("Wrong", (errors.LLMMixerError,), {"kind": errors.ErrorKind.RATE_LIMIT})
    with pytest.raises(TypeError, match="RetryableError"):
        type("AlsoWrong", (errors.RetryableError,), {"kind": errors.ErrorKind.AUTH})


def test_the_base_class_is_not_a_leaf_and_a_lying_wire_flag_is_ignored() -> None:
    error = errors.LLMMixerError("nobody classified this")
    assert type(error) is errors.UnexpectedError and isinstance(error, errors.ServerError)
    assert error.to_dict()["error"] | {"message": None} == {"kind": "server", "message": None, "vendor": None,
                                                             "status": None, "retry_after_s": None,
                                                             "retryable": True}
    rebuilt = errors.error_from_dict({"error": {"kind": "auth", "message": "x", "retryable": True}})
    assert isinstance(rebuilt, errors.AuthError) and rebuilt.to_dict()["error"]["retryable"] is False


def test_names_without_trailing_underscores_keep_the_old_names() -> None:
    assert errors.PermissionError_ is errors.PermissionDeniedError
    assert errors.CancelledError_ is errors.CancelledError
    assert errors.TimeoutError_ is errors.ConnectTimeoutError
    assert errors.ConnectionError_ is errors.ConnectionFailedError
    assert not [name for name in errors.__all__ if name.endswith("_")
                and name not in {"PermissionError_", "CancelledError_", "TimeoutError_", "ConnectionError_"}]


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "12"}, 12.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
    ({"llm_provider-retry-after": "4"}, 4.0),  # LiteLLM's proxy passes the provider's headers through so
    ({"llm_provider-retry-after-ms": "250"}, 0.25),
    ({"retry-after": "-3"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None),
    ({}, None),
    (None, None),
])
def test_retry_after_is_read_in_one_place(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert errors.retry_after_s(headers) == seconds


def test_a_retry_after_date_counts_from_now() -> None:
    assert errors.retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480.0) == 30.0


@pytest.mark.parametrize(("message", "secret", "expected"), [
    ("Name or service not known", "k", "Name or service not known"),  # a short key is never cut out of words
    ("bad key k given", "k", "bad key [redacted] given"),
    ("Incorrect API key: sk-abc123.", "sk-abc123", "Incorrect API key: [redacted]."),
    ("key=sk-abc123&x", "sk-abc123", "key=[redacted]&x"),
    ("sk-abc1234 is another key", "sk-abc123", "sk-abc1234 is another key"),
    ("nothing here", None, "nothing here"),
])
def test_only_whole_tokens_are_redacted(message: str, secret: str | None, expected: str) -> None:
    assert errors.redact(message, secret) == expected


# -- every adapter, through its SDK to the emulator -------------------------------------------------------------------

@pytest.fixture(params=CASES, ids=CASE_IDS)
async def vendor(request: pytest.FixtureRequest) -> AsyncIterator[tuple[VendorCase, BaseAdapter]]:
    case: VendorCase = request.param
    adapter = case.adapter(max_retries=0)
    yield case, adapter
    await adapter.aclose()
    await adapter.aclose()  # twice is fine


@pytest.mark.parametrize("header", ["retry-after", "llm_provider-retry-after"])
async def test_every_adapter_honours_retry_after_on_a_503(vendor: tuple[VendorCase, BaseAdapter],
                                                          emu: EmulatorServer, header: str) -> None:
    case, adapter = vendor
    emu.set_behaviour(case.emulator, error={"status": 503, "headers": {header: "7"}})
    result, _ = await generate(adapter)
    error = error_of(result)
    assert (error["kind"], error["retry_after_s"], error["retryable"]) == ("unavailable", 7.0, True)


async def test_every_adapter_redacts_a_key_the_vendor_echoes(vendor: tuple[VendorCase, BaseAdapter],
                                                             emu: EmulatorServer) -> None:
    case, adapter = vendor
    emu.set_behaviour(case.emulator, error={"status": 400, "message": f"bad request from key {case.key} here"})
    result, _ = await generate(adapter)
    text = "\n".join(block.text for block in result.content)
    assert case.key not in text and "[redacted]" in error_of(result)["message"]


async def test_a_consumer_that_stops_early_closes_the_vendor_stream_at_once(
        vendor: tuple[VendorCase, BaseAdapter], emu: EmulatorServer) -> None:
    case, adapter = vendor
    emu.set_behaviour(case.emulator, tokens=30, inter_token_ms=20)

    class Enough(Exception):
        pass

    with pytest.raises(Enough):
        async with contextlib.aclosing(adapter.stream(GenerateRequest(prompt="hi"))) as items:
            async for item in items:
                assert isinstance(item, TextDelta)
                raise Enough
    # Closed by the scope, not by garbage collection: the emulator saw the client go before the reply ended.
    records = await eventually(lambda: [r for r in emu.requests(case.emulator) if r["outcome"] != "open"])
    assert records[0]["outcome"] == "client_closed" and records[0]["tokens_sent"] < 30


# -- the MCP tool boundary --------------------------------------------------------------------------------------------

def crashing_server() -> LLMMixerMCPServer:
    server = LLMMixerMCPServer(name="boundary")

    @server.tool()
    async def crash(n: int) -> dict[str, Any]:
        return {"ratio": 1 / n}

    @server.tool()
    async def classified() -> dict[str, Any]:
        raise errors.QuotaError("out of credit", vendor="anthropic")

    return server


async def test_a_crash_is_a_server_error_with_a_message_and_its_traceback_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="llmmixer.mcp"), anyio.fail_after(10):
        async with Client(crashing_server()) as client:
            crashed = await client.call_tool("crash", {"n": 0})
            bad = await client.call_tool("crash", {"n": "zero"})
            unknown = await client.call_tool("nope", {})
            classified = await client.call_tool("classified", {})
            fine = await client.call_tool("crash", {"n": 4})
    error = error_of(crashed)
    assert (error["kind"], error["retryable"]) == ("server", True)
    assert "ZeroDivisionError" in error["message"] and "division by zero" in error["message"]
    logged = [r for r in caplog.records if r.name == "llmmixer.mcp" and r.exc_info]
    assert logged and logged[0].exc_info[0] is ZeroDivisionError
    assert error_of(bad)["kind"] == "invalid_input"
    assert error_of(unknown)["kind"] == "invalid_input"
    assert error_of(classified)["kind"] == "quota"  # a classified error that escapes keeps its kind
    assert not fine.is_error


async def test_server_info_version_is_the_package_version() -> None:
    server = crashing_server()
    assert server.version == package_version() != ""  # what initialize sends
    assert package_version() == __import__("importlib.metadata").metadata.version("llmmixer")
    with anyio.fail_after(10):
        async with Client(server) as client:
            assert client.server_info is None or client.server_info.version == package_version()


def test_error_results_carry_no_structured_content_and_read_back_from_text() -> None:
    result = error_result(errors.RateLimitError("slow down", retry_after_s=2.0))
    assert result.is_error and result.structured_content is None
    assert [block.text for block in result.content][0] == "rate_limit: slow down (retry after 2 s)"
    assert json.loads(result.content[1].text)["error"]["kind"] == "rate_limit"
    assert result_payload(result)["error"]["retry_after_s"] == 2.0
    multi = error_result(errors.InvalidInputError("two\nlines", retry_after_s=None))
    assert multi.content[0].text == "invalid_input: two lines"
    assert result_payload(ok_result({"text": "hi"})) == {"text": "hi"}


# -- stdio: coalesced, and no response in the same read as the notifications before it --------------------------------

NOTE = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":%d}}\n'
RESPONSE = '{"jsonrpc":"2.0","id":%d,"result":{"content":[]}}\n'


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
async def test_stdio_writes_coalesce_and_a_response_never_shares_a_read_with_earlier_notifications(kind: str
                                                                                                   ) -> None:
    if kind == "pipe":
        read_fd, write_fd = os.pipe()
    else:  # what Node's child_process gives a server for its stdio
        left, right = socket.socketpair()
        read_fd, write_fd = left.detach(), right.detach()
    assert unread_bytes_probe(write_fd) is not None
    reads: list[bytes] = []

    def reader() -> None:  # reads as soon as anything is there, like a host's event loop
        while chunk := os.read(read_fd, 65536):
            reads.append(chunk)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    writer = FdWriter(write_fd)
    calls, notes = 30, 50
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            for call in range(calls):
                for index in range(notes):
                    await writer.write(NOTE % index)
                    await writer.flush()
                    if index % 7 == 0:  # the SDK's writer loop gives up its turn between messages
                        await anyio.lowlevel.checkpoint()
                await writer.write(RESPONSE % call)
                await writer.flush()
            writer.close()
    os.close(write_fd)
    await anyio.to_thread.run_sync(thread.join, 10)
    os.close(read_fd)
    wire = b"".join(reads).decode()
    assert wire == "".join("".join(NOTE % i for i in range(notes)) + RESPONSE % c for c in range(calls))
    assert writer.writes < calls * (notes + 1) / 4  # coalesced: far fewer writes than messages
    for chunk in reads:  # the TypeScript SDK's hazard: a response after a notification in one read
        kinds = "".join("n" if '"method"' in line else "r" for line in chunk.decode().splitlines())
        assert "r" not in kinds[kinds.find("n"):] if "n" in kinds else True, kinds


def test_a_file_has_no_unread_count(tmp_path: Any) -> None:
    with open(tmp_path / "out", "wb") as handle:
        assert unread_bytes_probe(handle.fileno()) is None
