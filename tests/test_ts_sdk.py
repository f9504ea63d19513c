"""Every LLMMixer server as an MCP host on the official TypeScript SDK sees it (issue 12, item 1).

Claude Desktop, the MCP Inspector and most hosts are built on ``@modelcontextprotocol/sdk`` (pinned at 1.32.2 in
``.ci/run``). ``tests/ts/mcp_client.mjs`` drives that SDK's ``Client``; each test here writes it a plan, runs it with
``node`` against a real server process over stdio or Streamable HTTP, and checks what the host got:

- the tools list;
- streamed calls at 0 ms between tokens, many times over, whose progress deltas rebuild the text exactly (that SDK
  drops progress read in the same chunk as the response, typescript-sdk#2580);
- every error kind the emulators produce, read back as a tool result with its ``kind`` and not thrown (that SDK
  checks an error's ``structuredContent`` against the success schema and throws, typescript-sdk#1943);
- bad arguments, as an ``invalid_input`` result;
- cancellation through ``AbortSignal``: the emulator records the upstream close within 50 ms of the abort (its own
  wall-clock stamps against the host's);
- the orchestrator's ``ask`` (streamed, and with every leg failing), ``job`` and ``cancel``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import server_env

from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.servers.core.mcp import package_version
from llmmixer.servers.emulators.server import EmulatorServer, free_port

ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = ROOT / ".ci" / "node"
NODE_MODULES = NODE_PREFIX / "node_modules"
SDK_PIN = "@modelcontextprotocol/sdk@1.32.2"
CLIENT = Path(__file__).with_name("ts") / "mcp_client.mjs"
TRANSPORTS = ("stdio", "http")
ADAPTERS = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
REPLY = "Streaming 안녕하세요 to a TypeScript host 🚀👋🏽 — every delta counts."
STREAMED_CALLS = 25
# The vendors' read timeout in the adapters here: an aborted call's stream hangs (the emulator stops sending), so only
# the cancellation can close it before this. How fast the close comes is a bench figure (bench/race_bench.py, P2).
ADAPTER_TIMEOUT_S = 60
ABORTS = 3

# Errors every vendor's emulator renders in its own wire format, with the kind (and retry_after_s) they must map to.
COMMON_ERRORS: list[tuple[dict[str, Any], str, float | None]] = [
    ({"status": 400}, "bad_request", None),
    ({"status": 401}, "auth", None),
    ({"status": 403}, "permission", None),
    ({"status": 404}, "not_found", None),
    ({"status": 429, "retry_after_s": 3}, "rate_limit", 3.0),
    ({"status": 500}, "server", None),
    ({"status": 503, "headers": {"retry-after": "7"}}, "unavailable", 7.0),
    ({"status": 504}, "timeout", None),
]
VENDOR_ERRORS: dict[str, list[tuple[dict[str, Any], str, float | None]]] = {
    "anthropic": [({"status": 400, "type": "prompt_too_long"}, "context_length", None),
                  ({"status": 402, "type": "billing_error"}, "quota", None),
                  ({"status": 529}, "overloaded", None),
                  ({"type": "overloaded_error"}, "overloaded", None)],
    "openai": [({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
               ({"status": 400, "type": "invalid_prompt"}, "content_filter", None),
               ({"status": 429, "type": "insufficient_quota"}, "quota", None)],
    "gemini": [({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
               ({"status": 400, "type": "API_KEY_INVALID"}, "auth", None),
               ({"status": 429, "type": "daily_quota"}, "quota", 41.0)],
}
# Failures of the stream itself (behaviour fields, not an HTTP error).
STREAM_FAILURES: list[tuple[dict[str, Any], str]] = [
    ({"reset_after_tokens": 2}, "connection"),
    ({"error": {"status": 500}, "error_after_tokens": 2}, "server"),
]
BAD_ARGUMENTS = [{"prompt": 5}, {"prompt": "hi", "max_tokens": "many"}, {"prompt": ""}, {}]


# -- running the TypeScript host ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``.ci/node/node_modules`` with the pinned SDK, installed the way ``.ci/run`` does if it is missing."""
    if (NODE_MODULES / "@modelcontextprotocol" / "sdk" / "package.json").exists():
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"npm/node are not installed: cannot install {SDK_PIN}")
    done = subprocess.run([npm, "install", "--prefix", str(NODE_PREFIX), "--no-save", "--no-audit", "--no-fund",
                           SDK_PIN], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return NODE_MODULES


def run_host(node_modules: Path, transport: dict[str, Any], ops: list[dict[str, Any]], tmp_path: Path,
             timeout_s: float = 300) -> dict[str, Any]:
    """Run ``mcp_client.mjs`` with this plan; its JSON report."""
    plan = tmp_path / f"plan-{time.monotonic_ns()}.json"
    plan.write_text(json.dumps({"transport": transport, "ops": ops}))
    done = subprocess.run(["node", str(CLIENT), str(plan)], capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "LLMMIXER_NODE_MODULES": str(node_modules)})
    assert done.returncode == 0, f"the TypeScript host failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@contextmanager
def served(args: list[str], env: dict[str, str], transport: str, log_dir: Path, cwd: Path | None = None
           ) -> Iterator[dict[str, Any]]:
    """The host's transport spec for the server ``args``: launched by the host (stdio), or run here on HTTP."""
    if transport == "stdio":
        yield {"kind": "stdio", "command": args[0], "args": args[1:], "env": env, "cwd": str(cwd or log_dir)}
        return
    port = free_port()
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([*args, "--transport", "streamable-http", "--host", "127.0.0.1", "--port",
                                    str(port)], env=env, cwd=str(cwd or log_dir), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"server exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"server did not start: {log.read_text()}"
            try:
                httpx2.get(url, timeout=2)
                break
            except httpx2.TransportError:
                time.sleep(0.05)
        yield {"kind": "http", "url": url}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def host_errors(report: dict[str, Any]) -> list[str]:
    """What the host's SDK reported to ``onerror``. An aborted request gets no answer at all: no ``-32800 Request
    cancelled`` (the Python SDK's answer on the 2025-11-25 wire, which the TypeScript client, having dropped the
    request, reports as a response "for an unknown message ID"; see ``servers/core/transport.py``)."""
    return list(report["errors"])


def call(name: str, arguments: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"op": "call", "name": name, "arguments": arguments, **options}


def only(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(outcomes) == 1
    return outcomes[0]


def read_error(outcome: dict[str, Any]) -> dict[str, Any]:
    """An error the host read as a tool result (not thrown), text only, in the shared ``{"error": ...}`` shape."""
    assert "thrown" not in outcome, f"the host could not read the result: {outcome['thrown']}"
    assert outcome["isError"] is True, outcome
    assert outcome["structuredContent"] is None, outcome
    error = outcome["payload"]["error"]
    # What a host shows its model first: one plain line with the kind (and the retry delay when set).
    assert outcome["firstText"].startswith(f"{error['kind']}: ") and "\n" not in outcome["firstText"], outcome
    if error["retry_after_s"]:
        assert "retry after" in outcome["firstText"], outcome
    assert error["retryable"] == (error["kind"] in {"rate_limit", "overloaded", "server", "unavailable", "timeout",
                                                    "connection"}), error
    return error


def assert_rebuilt(outcomes: list[dict[str, Any]], text_of: Any = lambda payload: payload["text"]) -> None:
    lost = [(len(o["deltas"]), o.get("payload")) for o in outcomes
            if "thrown" in o or o["isError"] or "".join(o["deltas"]) != text_of(o["payload"])]
    assert not lost, f"{len(lost)} of {len(outcomes)} calls did not rebuild their text from progress: {lost[:2]}"


def assert_closed_after(records: list[dict[str, Any]], aborted_at: list[float]) -> None:
    """Each upstream stream was closed by its abort: after it (emulator stamps vs the host's, one clock), and well
    before the read timeout could have closed it."""
    delays = sorted(record["closed_at"] - when for record, when in zip(records, aborted_at, strict=True))
    assert 0 <= delays[0] and delays[-1] < ADAPTER_TIMEOUT_S / 4, delays


def wait_for(probe: Any, timeout_s: float = 10) -> Any:
    """Poll state another thread owns (the emulator's records): there is nothing to await across processes."""
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


# -- the three adapters ---------------------------------------------------------------------------------------------

def adapter_args(source: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", f"llmmixer.servers.{source}_adapter", "--max-retries", "0",
            "--timeout", str(ADAPTER_TIMEOUT_S),
            *extra]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("source", list(ADAPTERS))
def test_an_adapter_reads_right_in_a_typescript_host(source: str, transport: str, emu: EmulatorServer,
                                                      node_modules: Path, tmp_path: Path) -> None:
    vendor = ADAPTERS[source]
    errors = COMMON_ERRORS + VENDOR_ERRORS[vendor]
    # One-shot behaviours, consumed in order by the calls that reach the vendor (no retries: --max-retries 0).
    emu.queue(vendor, *[{"error": injected} for injected, _, _ in errors],
              *[failure for failure, _ in STREAM_FAILURES],
              *[{"reply": REPLY, "tokens": 40, "hang_after_tokens": 3}] * ABORTS)
    emu.set_behaviour(vendor, reply=REPLY, tokens=60, inter_token_ms=0)
    ops = [
        {"op": "list_tools"},
        *[call("generate", {"prompt": "hi"}) for _ in errors],
        *[call("generate", {"prompt": "hi"}, progress=True) for _ in STREAM_FAILURES],
        call("generate", {"prompt": "hi"}, progress=True, abort_after_deltas=3, repeat=ABORTS),
        call("generate", {"prompt": "hi"}, progress=True, repeat=STREAMED_CALLS),
        *[call("generate", arguments) for arguments in BAD_ARGUMENTS],
    ]
    with served(adapter_args(source), server_env(emu), transport, tmp_path) as spec:
        report = run_host(node_modules, spec, ops, tmp_path)

    assert report["server"] == {"name": f"llmmixer-{source}", "version": package_version()}
    assert host_errors(report) == [], report["errors"][:3]  # e.g. "progress notification for an unknown token"
    tools = {tool["name"]: tool for tool in report["ops"][0]}
    assert set(tools) == {"generate", "list_models"}
    assert "text" in tools["generate"]["outputSchema"]["properties"]

    results = iter(report["ops"][1:])
    for (injected, kind, retry_after), outcomes in zip(errors, results):
        error = read_error(only(outcomes))
        assert (error["kind"], error["retry_after_s"], error["vendor"]) == (kind, retry_after, vendor
                                                                           if vendor != "gemini" else "google"), \
            (injected, error)
    for (_, kind), outcomes in zip(STREAM_FAILURES, results):
        assert read_error(only(outcomes))["kind"] == kind

    aborted = next(results)
    assert all("abortedAt" in outcome and len(outcome["deltas"]) == 3 for outcome in aborted)
    closed = wait_for(lambda: len(records := [r for r in emu.requests(vendor) if r["outcome"] == "client_closed"])
                      == ABORTS and records)
    assert_closed_after(closed, [outcome["abortedAt"] for outcome in aborted])

    assert_rebuilt(next(results))
    for arguments, outcomes in zip(BAD_ARGUMENTS, results):
        assert read_error(only(outcomes))["kind"] == "invalid_input", arguments


# -- the PTY runner -------------------------------------------------------------------------------------------------

PTY_SCRIPT = "for i in $(seq 1 40); do printf 'line %s 안녕 🚀\\n' $i; done"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_pty_runner_reads_right_in_a_typescript_host(transport: str, node_modules: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\ndeny = ["rm"]\n')
    ops = [
        {"op": "list_tools"},
        call("run", {"command": PTY_SCRIPT, "plain": True}, progress=True, repeat=10),
        call("run", {"command": "rm -rf /tmp/nothing-here"}),
        call("run", {"command": 5}),
        call("read", {"session_id": "no-such-session"}),
        call("run", {"command": "echo written > control", "cwd": str(tmp_path)}),
        call("run", {"command": "echo started; sleep 3; echo late > marker", "cwd": str(tmp_path)}, progress=True,
             abort_after_deltas=1),
        {"op": "sleep", "ms": 5000},  # the session stays open past the moment the command would have written
    ]
    args = [sys.executable, "-m", "llmmixer.servers.pty_runner", "--policy", str(policy)]
    with served(args, server_env(), transport, tmp_path) as spec:
        report = run_host(node_modules, spec, ops, tmp_path)
        assert host_errors(report) == []
        assert report["server"]["version"] == package_version()
        assert {"run", "start", "send", "read", "wait", "kill"} <= {tool["name"] for tool in report["ops"][0]}
        assert_rebuilt(report["ops"][1], text_of=lambda payload: payload["output"])
        assert read_error(only(report["ops"][2]))["kind"] == "policy"
        assert read_error(only(report["ops"][3]))["kind"] == "invalid_input"
        assert read_error(only(report["ops"][4]))["kind"] in {"not_found", "invalid_input"}
        assert not report["ops"][5][0]["isError"] and (tmp_path / "control").exists()  # the command can write here
        assert "abortedAt" in only(report["ops"][6])
        # The abort reached the runner: the command was killed, not left to finish its sleep and write.
        assert not (tmp_path / "marker").exists()


# -- the orchestrator (llmmixer mcp) --------------------------------------------------------------------------------

@pytest.mark.timeout(600)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_orchestrator_reads_right_in_a_typescript_host(transport: str, emu: EmulatorServer,
                                                           node_modules: Path, tmp_path: Path) -> None:
    for vendor in ADAPTERS.values():
        emu.set_behaviour(vendor, reply=REPLY, tokens=60, inter_token_ms=0)
    ops = [
        {"op": "list_tools"},
        call("ask", {"prompt": "hi", "mode": "race"}, progress=True, repeat=5),
        call("ask", {"prompt": "hi", "mode": "nope"}),
        call("job", {"job_id": "not a job id"}),
    ]
    with served([script_path("llmmixer"), "mcp"], server_env(emu), transport, tmp_path) as spec:
        report = run_host(node_modules, spec, ops, tmp_path)
        assert host_errors(report) == []
        assert report["server"] == {"name": "llmmixer", "version": package_version()}
        assert {"ask", "run_command", "agent", "job", "cancel"} == {tool["name"] for tool in report["ops"][0]}
        for outcome in report["ops"][1]:
            assert "thrown" not in outcome and not outcome["isError"], outcome
            winner = outcome["payload"]["winner"]
            streamed = "".join(d.split(": ", 1)[1] for d in outcome["deltas"] if d.startswith(f"{winner}: "))
            won = next(leg for leg in outcome["payload"]["legs"] if leg["source"] == winner)
            assert streamed == won["text"] == REPLY
        assert read_error(only(report["ops"][2]))["kind"] == "invalid_input"
        assert read_error(only(report["ops"][3]))["kind"] == "invalid_input"

        # Every leg fails: the host gets isError with the legs' kind, and each leg's error inside.
        emu.reset()
        for vendor in ADAPTERS.values():
            emu.set_behaviour(vendor, error={"status": 401})
        failed = only(run_host(node_modules, spec, [call("ask", {"prompt": "hi", "mode": "all"})],
                               tmp_path)["ops"][0])
        error = read_error(failed)
        assert error["kind"] == "auth" and failed["payload"]["status"] == "error"
        assert {leg["error"]["kind"] for leg in failed["payload"]["legs"]} == {"auth"}

        # A run longer than wait_s is a job; job reads it, cancel stops it and closes every upstream stream. (A
        # first ask that completes starts the adapter servers, so the job's streams are open when cancel comes.)
        emu.reset()
        for vendor in ADAPTERS.values():
            emu.set_behaviour(vendor, reply=REPLY, tokens=40, hang_after_tokens=2)
            emu.queue(vendor, {"reply": REPLY})
        report = run_host(node_modules, spec, [
            call("ask", {"prompt": "warm up", "mode": "all"}),
            call("ask", {"prompt": "hi", "mode": "all", "wait_s": 3}),
            call("job", {}, bind={"job_id": [1, "job_id"]}),
            call("cancel", {}, bind={"job_id": [1, "job_id"]}),
            call("job", {}, bind={"job_id": [1, "job_id"]}),
        ], tmp_path)
        warm, started, running, cancelled, after = (only(outcomes) for outcomes in report["ops"])
        assert warm["payload"]["status"] == "done"
        assert started["payload"]["status"] == "running" and not started["isError"]
        assert started["payload"]["partial"], started  # the job's streams were open
        assert running["payload"]["status"] == "running" and running["payload"]["job_id"]
        assert cancelled["payload"]["status"] == "cancelled" and not cancelled["isError"]
        assert after["payload"]["status"] == "cancelled"
        wait_for(lambda: len(records := [r for r in emu.requests() if r["method"] == "POST"
                                         and r["outcome"] != "completed"]) == 3
                 and all(r["outcome"] == "client_closed" for r in records))

        # The host abandons an ask (AbortSignal): the run is cancelled end to end, every vendor sees the close. (The
        # warm-up ask starts the adapter servers first, as above.)
        emu.reset()
        for vendor in ADAPTERS.values():
            emu.set_behaviour(vendor, reply=REPLY, tokens=40, hang_after_tokens=2)
            emu.queue(vendor, {"reply": REPLY})
        _, aborted, _ = run_host(node_modules, spec, [
            call("ask", {"prompt": "warm up", "mode": "all"}),
            call("ask", {"prompt": "hi", "mode": "all"}, progress=True, abort_after_deltas=3, repeat=ABORTS),
            {"op": "sleep", "ms": 1000},  # the session stays open: only the cancellation can close the streams
        ], tmp_path)["ops"]
        aborted_at = [outcome["abortedAt"] for outcome in aborted]
        hung = wait_for(lambda: (records := [r for r in emu.requests() if r["method"] == "POST"
                                             and r["outcome"] != "completed"])
                        and all(r["outcome"] == "client_closed" for r in records) and records)
        # Each aborted ask's streams (those opened before its abort, after the previous one) close after that abort.
        runs = []
        for index, when in enumerate(aborted_at):
            since = aborted_at[index - 1] if index else 0.0
            opened = [r for r in hung if since <= r["started_at"] < when]
            assert opened, (index, hung)
            runs.append(max(opened, key=lambda r: r["closed_at"]))
        assert_closed_after(runs, aborted_at)
