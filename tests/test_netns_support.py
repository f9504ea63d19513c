"""The loopback-only namespace the CLI tests run in really catches an attempt to leave it."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.netns_support import LoopbackNetns, netns_available

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for `ip netns`")

PROBE = """
import socket
try:
    socket.getaddrinfo("api.anthropic.com", 443)
except OSError:
    pass
try:
    socket.create_connection(("203.0.113.9", 443), timeout=5).close()
except OSError:
    pass
"""


def test_dns_and_connections_leaving_loopback_are_recorded() -> None:
    with LoopbackNetns(f"agents-probe-{os.getpid()}") as ns:
        subprocess.run([*ns.exec_prefix, "python3", "-c", PROBE], check=True, timeout=60)
        escapes = ns.escapes()
    assert any(e.startswith("dns api.anthropic.com") for e in escapes), escapes
    assert "tcp 203.0.113.9:443" in escapes
