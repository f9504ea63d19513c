"""Issue 24 items 2 and 8 over real stdio, with raw bytes: every line a host sends gets a JSON-RPC answer, on every
one of the five stdio servers, and no server outlives a host that dies with its output unread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from conftest import server_env

from llmmixer.servers.core.manifest import load_manifests

pytestmark = pytest.mark.anyio

BIN = Path(sys.executable).parent
# The five stdio servers, as a host launches them.
SERVERS = {m.name: [str(BIN / m.script)] if m.script else [sys.executable, "-m", m.module] for m in load_manifests()}
SERVERS["mcp"] = [str(BIN / "llmmixer"), "mcp"]
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}

# (raw line, expected id, expected code)
BAD_LINES: list[tuple[bytes, Any, int]] = [
    (rb'{"jsonrpc":"2.0","id":11,"method":"ping","params":{"x":"\ud800"}}', 11, -32700),
    (b'{"jsonrpc":"2.0","id":12,"method":"ping","params":{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}}", None, -32700),
    (b'{"jsonrpc":"2.0","id":13,"method":"ping","params":5}', 13, -32602),
    (b'{"jsonrpc":"2.0","id":"s14","method":"ping","params":[1]}', "s14", -32602),
    (b'{"jsonrpc":"2.0","id":15,"method":7}', 15, -32600),
    (b'{"jsonrpc":"1.0","id":16,"method":"ping"}', 16, -32600),
    (b"[1, 2]", None, -32600),
    (b"not json at all", None, -32700),
    (b"\xff\xfe\x00garbage", None, -32700),
    (b'{"jsonrpc":"2.0","id":17,"method":"ping"', None, -32700),  # cut off
]


class Raw:
    """A server subprocess spoken to in raw bytes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, cwd=cwd)

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    async def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with anyio.fail_after(60):
            while True:
                line = await anyio.to_thread.run_sync(self.proc.stdout.readline)
                assert line, "the server closed its output"
                message = json.loads(line)
                if "method" not in message:  # a notification or a request of the server's: not an answer
                    return dict(message)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.mark.parametrize("name", sorted(SERVERS))
async def test_every_line_gets_a_json_rpc_answer(name: str, emu: Any, tmp_path: Path) -> None:
    server = Raw(SERVERS[name], server_env(emu), tmp_path)
    try:
        server.send(json.dumps(INIT).encode())
        assert (await server.answer())["id"] == 0
        server.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        for line, request_id, code in BAD_LINES:
            server.send(line)
            answer = await server.answer()
            assert (answer["id"], answer["error"]["code"]) == (request_id, code), (line[:80], answer)
        server.send(b'{"jsonrpc":"2.0","id":99,"method":"ping"}')
        assert await server.answer() == {"jsonrpc": "2.0", "id": 99, "result": {}}
    finally:
        server.close()


HOST = textwrap.dedent("""
    import json, subprocess, sys, time
    argv, call, keep = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "shared"
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if keep:  # another process of the host's holds both pipes, and never reads
        subprocess.Popen(["sleep", "600"], pass_fds=(server.stdin.fileno(), server.stdout.fileno()))
    def send(message):
        server.stdin.write(json.dumps(message).encode() + b"\\n")
        server.stdin.flush()
    send(json.loads(sys.argv[4]))
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send(call)
    for i in range(300):  # answers nobody will read: far more than a pipe holds
        send({"jsonrpc": "2.0", "id": 1000 + i, "method": "tools/list"})
    print(server.pid, flush=True)
    time.sleep(600)
""")

CALLS = {
    "claude": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "generate", "arguments": {"prompt": "count slowly"}, "_meta": {"progressToken": 1}}},
    "mcp": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "ask", "arguments": {"prompt": "count slowly", "models": ["claude"], "mode": "all"},
                       "_meta": {"progressToken": 1}}},
}


@pytest.mark.parametrize("pipes", ["closed", "shared"])
@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_server_exits_with_its_children_when_its_host_dies_with_output_unread(
        name: str, pipes: str, emu: Any, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=500, tokens=200, reply="tick " * 200)
    host = subprocess.Popen([sys.executable, "-c", HOST, json.dumps(SERVERS[name]), json.dumps(CALLS[name]),
                             "shared" if pipes == "shared" else "closed", json.dumps(INIT)],
                            stdout=subprocess.PIPE, env=server_env(emu), cwd=tmp_path, start_new_session=True)
    assert host.stdout is not None
    try:
        server = psutil.Process(int(await anyio.to_thread.run_sync(host.stdout.readline)))
        with anyio.fail_after(60):  # the call is in flight: the vendor has been asked
            while not emu.requests("anthropic"):
                await anyio.sleep(0.05)
        family = [server, *server.children(recursive=True)]
        if name == "mcp":
            assert len(family) >= 2, "the orchestrator launched its adapter"
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        started = anyio.current_time()
        gone, alive = await anyio.to_thread.run_sync(lambda: psutil.wait_procs(family, timeout=30))
        took = anyio.current_time() - started
        assert alive == [], [(p.pid, p.name()) for p in alive]
        print(f"{name}/{pipes}: {len(gone)} processes gone {took:.2f} s after the host died")
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(host.pid, signal.SIGKILL)  # the host's `sleep`, and anything left behind
