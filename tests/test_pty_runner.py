"""The PTY runner through real MCP (in-memory ``mcp.Client(server)``, one stdio subprocess), real programs, both
backends: issue 4's "Behaviour that must hold" except the policy (tests/test_pty_policy.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.results import result_payload
from llmmixer.servers.pty_runner.secrets import EnvPolicy
from llmmixer.servers.pty_runner.runner import Limits, PtyRunner
from llmmixer.servers.pty_runner.server import build_pty_server

pytestmark = pytest.mark.anyio

BACKENDS = ["pty", "pipe"]
# The suite runs with the sandbox as the environment asks (read at import, before the autouse fixture clears every
# LLMMIXER_* variable): `LLMMIXER_PTY_SANDBOX=off pytest tests/test_pty_*.py` runs it unsandboxed.
SANDBOX = os.environ.get("LLMMIXER_PTY_SANDBOX", "auto")
WAIT_LAYERS = {"kernel", "quiescence", "prompt"}


@contextlib.asynccontextmanager
async def connect(backend: str, *, limits: Limits | None = None, **runner_kwargs: Any) -> AsyncIterator[Client]:
    runner = PtyRunner(backend=backend, limits=limits, sandbox=SANDBOX, **runner_kwargs)  # type: ignore[arg-type]
    async with Client(build_pty_server(runner)) as client:
        yield client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.content
    assert result.structured_content is None  # errors travel as text only
    return result_payload(result)["error"]


def descendants() -> list[psutil.Process]:
    alive = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- run -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_run_line_endings_and_streaming(backend: str) -> None:
    chunks: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        chunks.append(message or "")

    async with connect(backend) as client:
        result = await client.call_tool("run", {"command": "printf 'a\\nb'"}, progress_callback=on_progress)
    body = result.structured_content
    assert body is not None and not result.is_error
    assert body["output"] == ("a\r\nb" if backend == "pty" else "a\nb")
    assert body["exit_code"] == 0 and body["backend"] == backend
    assert body["timed_out"] is False and body["truncated"] is False
    assert "".join(chunks) == body["output"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_run_exit_codes_pass_through(backend: str) -> None:
    async with connect(backend) as client:
        assert (await call(client, "run", command="exit 7"))["exit_code"] == 7
        assert (await call(client, "run", command="false"))["exit_code"] == 1
        assert (await call(client, "run", command="kill -TERM $$"))["exit_code"] == -signal.SIGTERM


@pytest.mark.parametrize("backend", BACKENDS)
async def test_run_timeout_kills_the_whole_group(backend: str) -> None:
    async with connect(backend) as client:
        with anyio.fail_after(300):  # the sleep would take 600 s: only the timeout ends it sooner
            body = await call(client, "run", command="sleep 600", timeout_s=1)
        assert body["timed_out"] is True and body["exit_code"] is None
        assert not [p for p in descendants() if p.name() == "sleep"]
        # A background child in the same group goes too.
        body = await call(client, "run", command="sleep 60 & sleep 60; wait", timeout_s=0.5)
        assert body["timed_out"] is True
        assert not [p for p in descendants() if p.name() in ("sleep", "bash")]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_run_feeds_stdin_and_plain_text(backend: str) -> None:
    async with connect(backend) as client:
        body = await call(client, "run", command="cat; printf '\\033[31mred\\033[0m\\n'", stdin="hello\n",
                          plain=True)
    assert "hello" in body["output"] and "\x1b[31m" in body["output"]
    assert body["plain"] == "hello\nred\n"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_isatty_only_on_the_pty_backend(backend: str) -> None:
    async with connect(backend) as client:
        body = await call(client, "run", command="python3 -c 'import sys; print(sys.stdin.isatty(), "
                                                  "sys.stdout.isatty())'")
    assert body["output"].strip() == ("True True" if backend == "pty" else "False False")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_child_environment_has_no_secrets(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # An allowlist: names no pattern would catch are dropped too; pass_env lets one through, `never` wins over it.
    secrets = {"ANTHROPIC_API_KEY": "sk-ant-leak", "GITHUB_TOKEN": "ghp-leak", "AWS_SECRET": "aws-leak",
               "DB_PASSWORD": "pw-leak", "MY_PASSWORD_FILE": "pwf-leak", "INTERNAL_THING": "extra-leak",
               "OPENAI_KEY": "openai-leak", "GITHUB_PAT": "pat-leak", "SLACK_WEBHOOK_URL": "hook-leak"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLMMIXER_TEST_VISIBLE", "visible-value")
    policy = EnvPolicy(pass_env=("LLMMIXER_TEST_*", "INTERNAL_THING"), never=("INTERNAL_THING",))
    async with connect(backend, env_policy=policy) as client:
        body = await call(client, "run", command="env")
    output = body["output"]
    assert "LLMMIXER_TEST_VISIBLE=visible-value" in output
    for name, value in secrets.items():
        assert name not in output and value not in output


# -- sessions --------------------------------------------------------------------------------------------------

NAME_SCRIPT = "python3 -c \"name = input('Name? '); print('Hello, ' + name)\""


@pytest.mark.parametrize("backend", BACKENDS)
async def test_input_prompt_is_detected_answered_and_read_back(backend: str) -> None:
    async with connect(backend) as client:
        session = await call(client, "start", command=NAME_SCRIPT)
        assert session["backend"] == backend
        sid = session["session_id"]
        waiting = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert waiting["waiting_for_input"] is True and waiting["timed_out"] is False
        assert waiting["waiting_layer"] in WAIT_LAYERS
        assert waiting["output"].endswith("Name? ")
        await call(client, "send", session_id=sid, text="Ada", keys=["enter"])
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
        assert done["exited"] is True and done["exit_code"] == 0
        assert "Hello, Ada" in done["output"]
        assert [e["type"] for e in done["events"]] == ["pty.exit"]
        again = await call(client, "read", session_id=sid, since=0)
        assert "Name? " in again["output"] and "Hello, Ada" in again["output"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_python_repl_session(backend: str) -> None:
    # Without a terminal python only prompts when forced to (-i): the pipe backend's honest equivalent.
    command = "python3 -q" if backend == "pty" else "python3 -q -i"
    async with connect(backend) as client:
        sid = (await call(client, "start", command=command))["session_id"]
        first = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert first["waiting_for_input"] is True and first["waiting_layer"] in WAIT_LAYERS
        assert first["output"].endswith(">>> "), (first["output"], first["waiting_layer"])
        await call(client, "send", session_id=sid, text="6 * 7", keys=["enter"])
        answer = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert "42" in answer["output"] and answer["output"].endswith(">>> ")
        assert answer["waiting_for_input"] is True
        await call(client, "send", session_id=sid, keys=["ctrl-d"])
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
        assert done["exited"] is True and done["exit_code"] == 0


async def test_kernel_layer_decides_a_blocked_read() -> None:
    async with connect("pty", limits=Limits(quiet_s=30)) as client:  # quiescence cannot decide within the test
        sid = (await call(client, "start", command="printf ready; read line; echo \"got $line\""))["session_id"]
        waiting = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert waiting["waiting_for_input"] is True and waiting["waiting_layer"] == "kernel"
        busy = await call(client, "start", command="sleep 30")
        state = await call(client, "read", session_id=busy["session_id"], wait_s=0.3)
        assert state["waiting_for_input"] is False and state["waiting_layer"] == "kernel"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ctrl_c_interrupts_a_running_sleep(backend: str) -> None:
    async with connect(backend) as client:
        sid = (await call(client, "start", command="sleep 60"))["session_id"]
        waiting = await call(client, "wait", session_id=sid, until="input", timeout_s=0.3)
        assert waiting["waiting_for_input"] is False and waiting["timed_out"] is True
        await call(client, "send", session_id=sid, keys=["ctrl-c"])
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=30)
        assert done["exited"] is True and done["exit_code"] == -signal.SIGINT  # not the sleep's own end


@pytest.mark.parametrize("backend", BACKENDS)
async def test_auto_respond_answers_and_reports_an_event(backend: str) -> None:
    script = "printf 'Continue? [y/N] '; read answer; echo \"answer=$answer\""
    async with connect(backend) as client:
        sid = (await call(client, "start", command=script,
                          auto_respond=[{"pattern": r"\[y/N\]", "send": "y\n"}]))["session_id"]
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
    assert "answer=y" in done["output"]
    answered = [e for e in done["events"] if e["type"] == "pty.waiting"]
    assert len(answered) == 1 and answered[0]["source"] == "pty"
    assert answered[0]["data"]["layer"] == "auto_respond" and answered[0]["data"]["answered_bytes"] == 2
    assert "y\n" not in str(answered[0]["data"].values())


async def test_resize_reaches_the_terminal() -> None:
    async with connect("pty") as client:
        sid = (await call(client, "start", command="read x; stty size", cols=80, rows=24))["session_id"]
        await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert await call(client, "resize", session_id=sid, cols=100, rows=30) == {
            "session_id": sid, "cols": 100, "rows": 30}
        await call(client, "send", session_id=sid, keys=["enter"])
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
    assert "30 100" in done["output"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_kill_and_list_sessions(backend: str) -> None:
    async with connect(backend) as client:
        session = await call(client, "start", command="sleep 60")
        listed = (await call(client, "list_sessions"))["sessions"]
        assert [s["session_id"] for s in listed] == [session["session_id"]] and listed[0]["exited"] is False
        killed = await call(client, "kill", session_id=session["session_id"])
        assert killed["exited"] is True and killed["exit_code"] == -signal.SIGTERM
        assert gone(session["pid"])


async def test_session_limit_and_server_exit_kill_everything() -> None:
    pids = []
    async with connect("pty", limits=Limits(max_sessions=2)) as client:
        for _ in range(2):
            pids.append((await call(client, "start", command="sleep 60; echo never"))["pid"])
        error = await call_error(client, "start", command="sleep 60")
        assert error["kind"] == "unavailable" and "limit is 2" in error["message"]
    # Closing the client ends the server's lifespan: every group is killed.
    with anyio.fail_after(10):
        while not all(gone(pid) for pid in pids):
            await anyio.sleep(0.05)
    assert not [p for p in descendants() if p.name() == "sleep"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_read_offsets_report_what_the_buffer_dropped(backend: str) -> None:
    async with connect(backend, limits=Limits(output_limit=64 * 1024)) as client:
        sid = (await call(client, "start", command="head -c 300000 /dev/zero | tr '\\0' x; echo; echo END"))[
            "session_id"]
        await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
        body = await call(client, "read", session_id=sid, since=0)
    assert body["dropped"] > 200_000
    assert body["output"].rstrip().endswith("END")
    assert body["offset"] >= 300_000 and body["offset"] - body["dropped"] == len(body["output"].encode())


# -- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_bad_input_is_a_classified_error(backend: str) -> None:
    async with connect(backend) as client:
        for tool, args in [("read", {}), ("send", {"text": "x"}), ("wait", {}), ("kill", {}),
                           ("resize", {"cols": 10, "rows": 10})]:
            error = await call_error(client, tool, session_id="nope", **args)
            assert error["kind"] == "not_found", (tool, error)
        assert (await call_error(client, "run", command="true", timeout_s=-1))["kind"] == "invalid_input"
        sid = (await call(client, "start", command="sleep 30"))["session_id"]
        assert (await call_error(client, "wait", session_id=sid, timeout_s=-0.5))["kind"] == "invalid_input"
        assert (await call_error(client, "read", session_id=sid, wait_s=-1))["kind"] == "invalid_input"
        assert (await call_error(client, "send", session_id=sid, keys=["hyper-x"]))["kind"] == "invalid_input"
        assert (await call_error(client, "kill", session_id=sid, signal="NOPE"))["kind"] == "invalid_input"
        huge = "echo " + "x" * (64 * 1024)
        error = await call_error(client, "run", command=huge)
        assert error["kind"] == "invalid_input" and "limit" in error["message"]
        assert (await call_error(client, "start", command=huge))["kind"] == "invalid_input"
        assert (await call_error(client, "run", command="true", cwd="/no/such/dir"))["kind"] == "invalid_input"
        assert (await call_error(client, "run", command=123))["kind"] == "invalid_input"
        assert (await call(client, "run", command="echo still here"))["output"].strip() == "still here"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_binary_garbage_is_replaced(backend: str) -> None:
    async with connect(backend) as client:
        body = await call(client, "run", command="head -c 200000 /dev/urandom; printf '\\377\\376 tail'")
        assert "\ufffd" in body["output"] and body["output"].endswith("\ufffd\ufffd tail")
        assert (await call(client, "run", command="echo fine"))["output"].strip() == "fine"


@pytest.mark.e2e
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_100_mb_flood_is_capped_and_the_server_stays_responsive(backend: str) -> None:
    limit = 256 * 1024
    async with connect(backend, limits=Limits(output_limit=limit, stream_limit=limit)) as client:
        result: dict[str, Any] = {}
        answered_during_flood = 0

        async def flood() -> None:
            result.update(await call(client, "run", command="head -c 100000000 /dev/zero | tr '\\0' y; echo END",
                                     timeout_s=110))

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            while not result:
                await call(client, "list_sessions")
                answered_during_flood += not result  # answered while the flood still ran
                await anyio.sleep(0.2)
        assert result["exit_code"] == 0 and result["truncated"] is True
        assert len(result["output"].encode()) <= limit and result["output"].rstrip().endswith("END")
        assert answered_during_flood >= 1  # a server blocked by the flood answers only once it is over


# -- stdio: the console module as a real subprocess -------------------------------------------------------------


def stdio_params(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.pty_runner", "--sandbox",
                                                               SANDBOX, *args],
                                 env={**os.environ, "ANTHROPIC_API_KEY": "sk-ant-stdio-leak"})


@pytest.mark.e2e
async def test_stdio_server_runs_and_kills_sessions_when_stdio_closes(tmp_path: Path) -> None:
    async with Client(stdio_params("--backend", "pipe", "--cwd", str(tmp_path))) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {"run", "start", "send", "read", "wait", "resize", "kill", "list_sessions"}
        body = await call(client, "run", command="pwd; env")
        assert body["backend"] == "pipe" and body["output"].startswith(str(tmp_path))
        assert "sk-ant-stdio-leak" not in body["output"]
        pid = (await call(client, "start", command="sleep 60"))["pid"]
    with anyio.fail_after(10):
        while not gone(pid):
            await anyio.sleep(0.05)


@pytest.mark.e2e
async def test_sigterm_kills_every_session() -> None:
    closed = False
    with contextlib.suppress(Exception):  # the server dies under the client: closing may report the lost link
        async with Client(stdio_params()) as client:
            session = await call(client, "start", command="sleep 60")
            assert session["backend"] == "pty"
            server = psutil.Process(session["pid"]).parent()
            assert server is not None and "pty_runner" in " ".join(server.cmdline())
            server.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                while not gone(session["pid"]):
                    await anyio.sleep(0.05)
            with anyio.fail_after(10):  # and the server itself goes (its exit is reaped by the client's transport)
                while not gone(server.pid):
                    await anyio.sleep(0.05)
            closed = True
    assert closed


def test_bad_policy_file_stops_the_server(tmp_path: Path) -> None:
    from llmmixer.servers.pty_runner.__main__ import main

    bad = tmp_path / "policy.toml"
    bad.write_text("[policy]\ndeny = 'rm'\n")
    assert main(["--policy", str(bad)]) == 2
    assert main(["--policy", str(tmp_path / "missing.toml")]) == 2

