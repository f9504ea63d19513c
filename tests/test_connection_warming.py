"""After a cancelled stream, an adapter server leaves a fresh connection to its vendor in the SDK's pool, and the
vendor's next call uses it: checked at the emulator (over TLS, so the connection that is saved carries a real
handshake), by the client port each request came from."""

from __future__ import annotations

import anyio
import pytest
from adapter_support import eventually
from conftest import server_env
from mcp import Client, StdioServerParameters
from test_adapter_servers import VENDORS, command

from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tls_emulator() -> EmulatorServer:
    with EmulatorServer(tls=True) as emu:
        yield emu


@pytest.mark.e2e
@pytest.mark.parametrize("source", list(VENDORS))
async def test_a_cancelled_stream_is_replaced_by_a_warm_connection(source: str, tls_emulator: EmulatorServer
                                                                    ) -> None:
    vendor = VENDORS[source][0]
    emu = tls_emulator
    emu.reset()
    args = command(source)
    params = StdioServerParameters(command=args[0], args=args[1:], env=server_env(emu))
    async with Client(params) as client:
        emu.set_behaviour(vendor, reply="x" * 400, tokens=200, inter_token_ms=20)
        first_delta = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            first_delta.set()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                async def slow_call() -> None:
                    await client.call_tool("generate", {"prompt": "long"}, progress_callback=on_progress)

                tg.start_soon(slow_call)
                await first_delta.wait()
                tg.cancel_scope.cancel()

        cancelled = await eventually(lambda: [r for r in emu.requests(vendor)
                                              if r["method"] == "POST" and r["outcome"] == "client_closed"], 10)
        warm = await eventually(lambda: [r for r in emu.requests(vendor, probes=True)
                                         if r["method"] == "HEAD" and r["id"] > cancelled[0]["id"]], 10)
        assert warm[0]["peer"] != cancelled[0]["peer"]  # a new connection, not the cancelled one

        emu.set_behaviour(vendor, reply="quick", tokens=2)
        result = await client.call_tool("generate", {"prompt": "next"})
        assert not result.is_error, result.content
        nxt = [r for r in emu.requests(vendor) if r["id"] > warm[0]["id"]]
        assert [r["peer"] for r in nxt] == [warm[0]["peer"]]  # the next call rode the warmed connection
