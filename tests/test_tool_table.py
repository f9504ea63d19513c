"""Issue 25: docs/hosts.md's tool tables (each tool's annotations, each server's tools/list cost) are generated from
the servers by tools/tool_table.py; this fails when they are stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_the_documented_tool_tables_match_the_servers() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "tool_table.py"), "--check"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
