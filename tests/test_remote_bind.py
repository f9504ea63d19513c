"""Remote binds (issue 12, item 5): a server bound to ``0.0.0.0`` or ``::`` with a token answers a client on
another address, by the machine's own address or an ``--allowed-host`` name, and still refuses a missing token
(401) and a foreign ``Host`` (421).

"Another address" is real: each test creates a network namespace joined to this one by a veth pair on a private
/30 (and a /64 for IPv6), and runs the client inside it with ``ip netns exec``. Both faces are covered:
``llmmixer serve`` and an MCP server's Streamable HTTP transport (``llmmixer-pty``), the latter with the MCP
Python SDK as the client.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from conftest import PYTHON, server_env

TOKEN = "remote-bind-test-token"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("curl") is None,
    reason="needs root, iproute2 and curl: the test creates a network namespace and a veth pair")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class Netns:
    name: str
    host_v4: str  # this side of the veth: the server's address as the client sees it
    host_v6: str

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *command], capture_output=True, text=True,
                              timeout=timeout)

    def curl(self, url: str, *args: str) -> tuple[int, str]:
        done = self.run("curl", "-sS", "-g", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", *args, url)
        assert done.returncode == 0, done.stderr
        body, _, status = done.stdout.rpartition("\n")
        return int(status), body


@pytest.fixture
def netns() -> Iterator[Netns]:
    tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"[-6:]
    name, outside, inside = f"web-{tag}", f"webv{tag}a", f"webv{tag}b"
    a, b = random.randrange(16, 250), random.randrange(0, 64) * 4
    v4, v6 = f"10.{a}.{a}.{b + 1}", f"fd77:{a:x}:{b:x}::1"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", name)
        _ip("addr", "add", f"{v4}/30", "dev", outside)
        _ip("-6", "addr", "add", f"{v6}/64", "dev", outside, "nodad")
        _ip("link", "set", outside, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"10.{a}.{a}.{b + 2}/30", "dev", inside)
        _ip("netns", "exec", name, "ip", "-6", "addr", "add", f"fd77:{a:x}:{b:x}::2/64", "dev", inside, "nodad")
        _ip("netns", "exec", name, "ip", "link", "set", inside, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Netns(name, v4, v6)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=20)


def _free_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start() -> Iterator[Callable[..., None]]:
    procs: list[subprocess.Popen[bytes]] = []

    def launch(command: list[str], port: int, loopback: str = "127.0.0.1", **env: str) -> None:
        proc = subprocess.Popen(command, env=server_env(LLMMIXER_TOKEN=TOKEN, **env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            with socket.socket(socket.AF_INET6 if ":" in loopback else socket.AF_INET) as sock:
                if sock.connect_ex((loopback, port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{command} did not listen on {port}")

    yield launch
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


AUTH = ("-H", f"Authorization: Bearer {TOKEN}")


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_llmmixer_serve_on_a_wildcard_bind_answers_another_machine(netns: Netns, start: Callable[..., None], bind: str) -> None:
    port = _free_port()
    start([PYTHON, "-m", "llmmixer.orchestrator.cli", "serve", "--host", bind, "--port", str(port),
           "--allowed-host", "mixer.internal"], port, "::1" if bind == "::" else "127.0.0.1")
    # asyncio binds "::" IPv6-only, so each bind is reached on its own family.
    address = f"[{netns.host_v6}]" if bind == "::" else netns.host_v4
    url = f"http://{address}:{port}/api/runs"
    status, body = netns.curl(url, *AUTH)
    assert status == 200 and json.loads(body)["runs"] == [], body
    status, body = netns.curl(url)
    assert status == 401 and json.loads(body)["error"]["kind"] == "auth"
    status, body = netns.curl(url, *AUTH, "-H", "Host: evil.example")
    assert status == 421 and json.loads(body)["error"]["kind"] == "permission"
    # A name the operator listed (a proxy's, a DNS name) is answered like the machine's own addresses.
    status, _ = netns.curl(url, *AUTH, "-H", f"Host: mixer.internal:{port}")
    assert status == 200
    # Writes still need the token and a JSON body; a cross-site style text/plain post is refused.
    status, body = netns.curl(f"http://{address}:{port}/api/commands", *AUTH, "-X", "POST",
                              "-H", "Content-Type: text/plain", "--data", '{"command": "true"}')
    assert status == 403, body


MCP_CLIENT = """
import sys, anyio, httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

async def main(url, token):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=http)) as client:
        tools = await client.list_tools()
        print(",".join(sorted(t.name for t in tools.tools)))

anyio.run(main, sys.argv[1], sys.argv[2])
"""

INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}})


def test_an_mcp_server_on_a_wildcard_bind_answers_another_machine(netns: Netns, start: Callable[..., None]) -> None:
    port = _free_port()
    start([PYTHON, "-m", "llmmixer.servers.pty_runner", "--transport", "streamable-http", "--host", "0.0.0.0",
           "--port", str(port)], port)
    url = f"http://{netns.host_v4}:{port}/mcp"
    listed = netns.run(PYTHON, "-c", MCP_CLIENT, url, TOKEN)
    assert listed.returncode == 0, listed.stderr
    assert "run" in listed.stdout.strip().split(",")
    headers = ("-X", "POST", "-H", "Content-Type: application/json",
               "-H", "Accept: application/json, text/event-stream", "--data", INITIALIZE)
    status, body = netns.curl(url, *headers)
    assert status == 401 and json.loads(body)["error"]["kind"] == "auth"
    status, body = netns.curl(url, *headers, *AUTH, "-H", "Host: evil.example")
    assert status == 421 and json.loads(body)["error"]["kind"] == "permission"
    status, body = netns.curl(url, *headers, *AUTH, "-H", "Origin: http://evil.example")
    assert status == 403
    failed = netns.run(PYTHON, "-c", MCP_CLIENT, url, "wrong-token")
    assert failed.returncode != 0
