"""issue 27, item 6: the small traps, each a clear message or a usage error before anything runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import server_env
from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.emulators.server import EmulatorServer, free_port

BIN = Path(sys.executable).parent
LLMMIXER = str(BIN / "llmmixer")


@pytest.mark.anyio
async def test_servers_names_each_key_variable_and_endpoint(emu: EmulatorServer, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    async with Runs(Config(servers=default_servers(inprocess=True)), open_store("memory")) as runs:
        statuses = {s["name"]: s for s in runs.server_statuses()}
    assert statuses["claude"]["key_var"] == "ANTHROPIC_API_KEY" and statuses["claude"]["key_set"] is False
    assert statuses["gpt"]["key_var"] == "OPENAI_API_KEY" and statuses["gpt"]["key_set"] is True
    assert statuses["gpt"]["endpoint"] == emu.env["OPENAI_BASE_URL"]
    assert "key_var" not in statuses["pty"] or statuses["pty"]["key_var"] is None
    # Names only: no key value anywhere in what is shown.
    assert "sk-test" not in json.dumps(list(statuses.values()))


@pytest.mark.e2e
def test_servers_says_no_key_instead_of_ready(emu: EmulatorServer, tmp_path: Path) -> None:
    env = {**{k: v for k, v in server_env(emu).items() if k != "ANTHROPIC_API_KEY"}, "COLUMNS": "300"}
    done = subprocess.run([LLMMIXER, "servers", "--standalone"], capture_output=True, text=True, env=env,
                          timeout=180, cwd=tmp_path)
    claude = next(line for line in done.stdout.splitlines() if "│ claude" in line)
    assert "no key" in claude and "ANTHROPIC_API_KEY (not set)" in claude, done.stdout
    gpt = next(line for line in done.stdout.splitlines() if "│ gpt" in line)
    assert "ready" in gpt and emu.env["OPENAI_BASE_URL"] in gpt
    assert done.returncode == 1  # not every server can answer


@pytest.mark.e2e
def test_data_without_schema_is_a_usage_error_before_anything_runs(emu: EmulatorServer, tmp_path: Path) -> None:
    done = subprocess.run([LLMMIXER, "ask", "hi", "--data"], capture_output=True, text=True,
                          env=server_env(emu), timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "--schema" in done.stderr
    assert emu.requests() == []  # no race was paid for


@pytest.mark.e2e
def test_a_standalone_http_server_says_where_it_is_and_stops_without_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "llmmixer-gpt"), "--transport", "streamable-http", "--port", str(port)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env=server_env(None, keys=False))
    try:
        assert proc.stderr is not None
        said = ""
        while "Ctrl-C stops it" not in said:  # the SDK logs its session manager's start around it
            line = proc.stderr.readline()
            assert line, "the server ended without saying where it listens"
            said += line
        assert f"llmmixer-gpt: MCP over Streamable HTTP at http://127.0.0.1:{port}/mcp" in said
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert "stopped" in rest


@pytest.mark.e2e
def test_config_write_says_which_keys_are_left_as_placeholders(tmp_path: Path) -> None:
    target = tmp_path / "claude_desktop_config.json"
    done = subprocess.run([LLMMIXER, "config", "claude-desktop", "--write", "--config-path", str(target)],
                          capture_output=True, text=True, env=server_env(None, keys=False), timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "${ANTHROPIC_API_KEY}" in target.read_text()
    assert "ANTHROPIC_API_KEY" in done.stderr and "placeholder" in done.stderr and "--with-env" in done.stderr
