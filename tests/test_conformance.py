"""Every LLMMixer MCP server against what MCP hosts and the official tools expect.

- The official conformance suite (npm ``@modelcontextprotocol/conformance``, pinned) over Streamable HTTP: every
  scenario that can apply to a tools-only server passes; the others are listed in ``NOT_APPLICABLE`` with the reason.
- The MCP Inspector CLI lists each server's tools when it launches the server by the exact command (and
  environment) that ``llmmixer config claude-desktop`` prints.
- Over stdio, each server answers both the modern (2026-07-28) path and the legacy initialize handshake, advertises
  only the tools capability (and the orchestrator resources, for its MCP Apps race view), and gives every tool an
  input and an output schema.

The npm tools live in ``.ci/node`` (``.ci/run`` installs them; so does the first test here that needs them). Only a
machine without npm skips those tests. ``python tests/test_conformance.py`` prints the scenario table.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.orchestrator.desktop_config import script_path

ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = ROOT / ".ci" / "node"
NODE_BIN = NODE_PREFIX / "node_modules" / ".bin"
CONFORMANCE_PIN = "@modelcontextprotocol/conformance@0.1.12"
INSPECTOR_PIN = "@modelcontextprotocol/inspector@0.15.0"

SERVERS = ("orchestrator", "claude", "gpt", "gemini", "pty")
TOKEN_BUDGET = 2_000  # tokens of the orchestrator's whole tools/list, at 4 characters per token

# Scenarios of the pinned suite that exercise the protocol and transport every server speaks.
APPLICABLE = {
    "server-initialize": "initialize handshake: protocol version, server info, capabilities",
    "ping": "ping utility",
    "tools-list": "every tool has a name, a description and an input schema",
    "server-sse-multiple-streams": "concurrent POST SSE streams on one session",
    "dns-rebinding-protection": "a foreign Host/Origin is refused with a 4xx on a loopback bind",
}
_FIXTURE = "calls the suite's own fixture tool {!r}; LLMMixer servers expose only their own tools"
_NO_RESOURCES = ("reads the suite's own fixture resources; the servers have none (the orchestrator's one resource is "
                 "its MCP Apps race view, tests/test_mcp_app.py)")
_NO_PROMPTS = "no prompts capability: the servers are tools-only"
NOT_APPLICABLE = {
    "logging-set-level": "no logging capability: servers report through tool results and progress, not log messages",
    "completion-complete": "no prompts or resource templates, so no completions capability",
    "tools-call-simple-text": _FIXTURE.format("test_simple_text")
    + " (the suite reports a vacuous pass: our unknown-tool error result is text content)",
    "tools-call-image": _FIXTURE.format("test_image_content"),
    "tools-call-audio": _FIXTURE.format("test_audio_content"),
    "tools-call-embedded-resource": _FIXTURE.format("test_embedded_resource"),
    "tools-call-mixed-content": _FIXTURE.format("test_multiple_content_types"),
    "tools-call-with-logging": _FIXTURE.format("test_tool_with_logging"),
    "tools-call-error": _FIXTURE.format("test_error_handling")
    + " (the suite reports a vacuous pass: our unknown-tool result has isError: true)",
    "tools-call-with-progress": _FIXTURE.format("test_tool_with_progress")
    + "; our own progress deltas are tested through the SDK client",
    "tools-call-sampling": _FIXTURE.format("test_sampling") + "; the servers never ask the host to sample",
    "tools-call-elicitation": _FIXTURE.format("test_elicitation")
    + "; only the PTY runner elicits (policy `ask`), tested through the SDK client",
    "json-schema-2020-12": _FIXTURE.format("json_schema_2020_12_tool"),
    "elicitation-sep1034-defaults": _FIXTURE.format("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _FIXTURE.format("test_elicitation_sep1330_enums"),
    "server-sse-polling": _FIXTURE.format("test_reconnection")
    + " (a tool that closes its SSE stream mid-call to test resumption)",
    "resources-list": _NO_RESOURCES,
    "resources-read-text": _NO_RESOURCES,
    "resources-read-binary": _NO_RESOURCES,
    "resources-templates-read": _NO_RESOURCES,
    "resources-subscribe": _NO_RESOURCES,
    "resources-unsubscribe": _NO_RESOURCES,
    "prompts-list": _NO_PROMPTS,
    "prompts-get-simple": _NO_PROMPTS,
    "prompts-get-with-args": _NO_PROMPTS,
    "prompts-get-embedded-resource": _NO_PROMPTS,
    "prompts-get-with-image": _NO_PROMPTS,
}


# ---------------------------------------------------------------------------------------------------------------
# Helpers: the pinned npm tools, server processes


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """``.ci/node/node_modules/.bin`` with both pinned tools, installed the way ``.ci/run`` does if missing."""
    wanted = (NODE_BIN / "conformance", NODE_BIN / "mcp-inspector")
    if all(path.exists() for path in wanted):
        return NODE_BIN
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"npm/node are not installed: cannot install {CONFORMANCE_PIN} and {INSPECTOR_PIN}")
    done = subprocess.run([npm, "install", "--prefix", str(NODE_PREFIX), "--no-save", "--no-audit", "--no-fund",
                           CONFORMANCE_PIN, INSPECTOR_PIN], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and all(path.exists() for path in wanted), done.stderr[-3000:]
    return NODE_BIN


@pytest.fixture
def env(emu: Any) -> dict[str, str]:
    """Fake keys and emulator base URLs: enough for any server (or the orchestrator's children) to start."""
    return server_env(emu)


def printed_entry(name: str, env: dict[str, str]) -> dict[str, Any]:
    """The single ``mcpServers`` entry that ``llmmixer config claude-desktop --servers NAME --with-env`` prints."""
    printed = subprocess.run([script_path("llmmixer"), "config", "claude-desktop", "--servers", name, "--with-env"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    (entry,) = json.loads(printed.stdout)["mcpServers"].values()
    assert Path(entry["command"]).is_absolute()
    return entry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # another process: polling its port is the only signal there is
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"server did not listen on {port} within {timeout_s}s:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def http_server(name: str, env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """Start one server on Streamable HTTP by its console script, as a user would; yield its /mcp URL."""
    entry = printed_entry(name, env)
    port = free_port()
    log = log_dir / f"{name}-server.log"
    argv = [entry["command"], *entry["args"], "--transport", "streamable-http", "--host", "127.0.0.1",
            "--port", str(port)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=log_dir, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def read_scenarios(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """``{scenario: checks}`` from the suite's output directory (one ``server-<scenario>-<stamp>/`` per scenario)."""
    results: dict[str, list[dict[str, Any]]] = {}
    known = sorted(APPLICABLE.keys() | NOT_APPLICABLE.keys(), key=len, reverse=True)
    for checks in out_dir.glob("server-*/checks.json"):
        stem = checks.parent.name.removeprefix("server-")
        scenario = next(s for s in known if stem.startswith(s + "-"))
        results[scenario] = json.loads(checks.read_text())
    return results


# ---------------------------------------------------------------------------------------------------------------
# The conformance suite


@pytest.mark.conformance
def test_every_scenario_of_the_pinned_suite_is_classified(node_tools: Path):
    listed = subprocess.run([str(node_tools / "conformance"), "list", "--server"], capture_output=True, text=True,
                            timeout=120, check=True).stdout
    scenarios = {line.strip()[2:] for line in listed.splitlines() if line.strip().startswith("- ")}
    assert scenarios, listed
    assert not APPLICABLE.keys() & NOT_APPLICABLE.keys()
    assert scenarios == APPLICABLE.keys() | NOT_APPLICABLE.keys(), "a scenario was added or removed: classify it"


@pytest.mark.conformance
@pytest.mark.parametrize("name", SERVERS)
def test_conformance_suite_over_streamable_http(name: str, node_tools: Path, env: dict[str, str], tmp_path: Path):
    out_dir = tmp_path / "results"
    with http_server(name, env, tmp_path) as url:
        done = subprocess.run([str(node_tools / "conformance"), "server", "--suite", "all", "--url", url,
                               "-o", str(out_dir)], capture_output=True, text=True, timeout=300)
    results = read_scenarios(out_dir)
    print(f"\nconformance {CONFORMANCE_PIN} against llmmixer {name} ({url}):")
    failures = []
    for scenario in sorted(results, key=lambda s: (s not in APPLICABLE, s)):
        statuses = [c["status"] for c in results[scenario]]
        verdict = "FAIL" if "FAILURE" in statuses else "pass"
        print(f"  {verdict:4} {'applicable' if scenario in APPLICABLE else 'n/a':10} {scenario}")
        if scenario in APPLICABLE and (verdict == "FAIL" or "SUCCESS" not in statuses or "WARNING" in statuses):
            # A warning counts too: POST SSE streams are resumable (event ids, a priming event, retry:), issue 25.
            failures.append((scenario, [c for c in results[scenario] if c["status"] != "INFO"]))
    missing = APPLICABLE.keys() - results.keys()
    assert not missing, f"scenarios did not run: {missing}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert not failures, json.dumps(failures, indent=1)[:4000]


@pytest.mark.conformance
def test_the_resumability_scenario_finds_a_priming_event_and_a_retry_field(node_tools: Path, env: dict[str, str],
                                                                          tmp_path: Path):
    """server-sse-polling calls the suite's own fixture tool (so it cannot pass here), but its resumability checks
    read our POST SSE stream: a priming event and a ``retry:`` field, though its raw POST sends an older
    ``MCP-Protocol-Version`` header than its session negotiated (the stream is primed by the session's version)."""
    out_dir = tmp_path / "results"
    with http_server("claude", env, tmp_path) as url:
        done = subprocess.run([str(node_tools / "conformance"), "server", "--scenario", "server-sse-polling", "--url",
                               url, "-o", str(out_dir)], capture_output=True, text=True, timeout=300)
    checks = {c["id"]: c["status"] for c in read_scenarios(out_dir).get("server-sse-polling", [])}
    assert checks, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert checks.get("server-sse-priming-event") == "SUCCESS", checks
    assert checks.get("server-sse-retry-field") == "SUCCESS", checks
    assert "WARNING" not in checks.values(), checks


# ---------------------------------------------------------------------------------------------------------------
# The Inspector, launching each server by the command the printed host config holds


@pytest.mark.conformance
@pytest.mark.parametrize("name", SERVERS)
def test_inspector_lists_the_tools_of_the_server_the_printed_config_launches(
    name: str, node_tools: Path, env: dict[str, str], tmp_path: Path
):
    entry = printed_entry(name, env)
    env_flags = [flag for var, value in entry.get("env", {}).items() for flag in ("-e", f"{var}={value}")]
    listed = subprocess.run([str(node_tools / "mcp-inspector"), "--cli", *env_flags, entry["command"],
                             *entry["args"], "--method", "tools/list"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    tools = json.loads(listed.stdout)["tools"]
    assert tools and all(t["name"] and t["description"] and t["inputSchema"] for t in tools)
    if name == "orchestrator":
        assert {t["name"] for t in tools} == {"ask", "run_command", "agent", "job", "cancel"}


# ---------------------------------------------------------------------------------------------------------------
# Protocol versions, capabilities, schemas and the tools/list size, over stdio through the SDK client


def tools_list_size(tools: list[Any]) -> tuple[int, int]:
    """Bytes of the ``tools/list`` result as compact JSON, and the 4-characters-per-token estimate."""
    payload = {"tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode()), -(-len(text) // 4)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("name", SERVERS)
async def test_modern_and_legacy_handshake_tools_only_capabilities_and_schemas(
    name: str, mode: str, env: dict[str, str], tmp_path: Path
):
    entry = printed_entry(name, env)
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=str(tmp_path))
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
            caps = client.server_capabilities
            assert caps.tools is not None
            advertised = {k for k in ("prompts", "resources", "logging", "completions") if getattr(caps, k)}
            served = {"resources"} if name == "orchestrator" else set()  # the race view (ui://llmmixer/race)
            assert advertised == served, f"{name} advertises {advertised} but serves {served or 'only tools'}"
            tools = (await client.list_tools()).tools
    assert tools
    for tool in tools:
        assert tool.description and tool.input_schema.get("type") == "object", tool.name
        assert tool.output_schema and tool.output_schema.get("type") == "object", f"{tool.name} has no output schema"
    size, tokens = tools_list_size(tools)
    print(f"\ntools/list of llmmixer {name} ({mode}): {len(tools)} tools, {size} bytes, ~{tokens} tokens")
    if name == "orchestrator":
        assert tokens < TOKEN_BUDGET, f"tools/list is ~{tokens} tokens; the budget is {TOKEN_BUDGET}"


def main() -> None:  # pragma: no cover - `python tests/test_conformance.py` prints the scenario table
    for scenario, what in APPLICABLE.items():
        print(f"applicable      {scenario}: {what}")
    for scenario, why in NOT_APPLICABLE.items():
        print(f"not applicable  {scenario}: {why}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
