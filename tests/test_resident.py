"""The resident service (issue 22): the CLI finds or starts ``llmmixer serve`` for its config and runs on it.

Every test here starts real detached services (``llmmixer serve --idle-exit``) in the test's own runtime and
state dirs, and stops them (``llmmixer serve --stop``) before it ends.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from conftest import server_env
from adapter_support import eventually

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
pytestmark = pytest.mark.anyio


def runtime_files() -> list[Path]:
    return sorted((Path(os.environ["XDG_RUNTIME_DIR"]) / "llmmixer").glob("serve-*.json"))


def runtime_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(path.read_text())
    return info


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as proc_stat:
        return proc_stat.read().rsplit(")", 1)[-1].split()[0] != "Z"


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LLMMIXER, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def resident_env(emu: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The CLI's environment with the resident service on; every service started under it is stopped after."""
    monkeypatch.delenv("LLMMIXER_RESIDENT")
    env = server_env(emu)
    env.pop("LLMMIXER_RESIDENT", None)
    yield env
    for path in runtime_files():
        pid = runtime_info(path)["pid"]
        if alive(pid):
            os.kill(pid, signal.SIGTERM)


async def test_ask_starts_a_service_whose_dashboard_lists_and_streams_cli_runs(resident_env: dict[str, str]) -> None:
    first = await anyio.to_thread.run_sync(lambda: cli("ask", "hello", "--json", env=resident_env))
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["status"] == "done" and answer["winner"]

    [path] = runtime_files()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = runtime_info(path)
    assert alive(info["pid"]) and info["pid"] != os.getpid()
    log = Path(os.environ["XDG_STATE_HOME"]) / "llmmixer" / "serve.log"
    assert info["log"] == str(log) and log.exists()
    auth = {"Authorization": f"Bearer {info['token']}"}

    async with httpx2.AsyncClient(base_url=info["url"], timeout=30) as client:
        assert (await client.get("/api/runs")).status_code == 401  # loopback needs the token too
        listed = (await client.get("/api/runs", headers=auth)).json()["runs"]
        assert answer["run_id"] in [run["run_id"] for run in listed]

        # A live SSE reader on /events sees the next CLI run as it happens.
        seen: list[dict[str, Any]] = []
        connected, done = anyio.Event(), anyio.Event()

        async def read() -> None:
            async with client.sse("/events", headers=auth, timeout=httpx2.Timeout(30, read=None)) as source:
                connected.set()
                async for sse in source:
                    if sse.data and sse.event != "gap":
                        seen.append(json.loads(sse.data))
                        if seen[-1]["type"] == "run.done":
                            done.set()
                            return

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await connected.wait()
                second = await anyio.to_thread.run_sync(
                    lambda: cli("ask", "again", "--models", "gpt", "--json", env=resident_env))
                await done.wait()
        assert second.returncode == 0, second.stderr
        run_id = json.loads(second.stdout)["run_id"]
        assert runtime_info(path)["pid"] == info["pid"]  # the same service: warm, not a second one
        types = [event["type"] for event in seen if event["run"] == run_id]
        assert types[0] == "run.started" and "delta" in types and types[-1] == "run.done"

    # The history is the user's run log: it survives the service (the standalone `logs` reads the same file).
    stopped = await anyio.to_thread.run_sync(lambda: cli("serve", "--stop", env=resident_env))
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(info["pid"]) and runtime_files() == []
    logs = await anyio.to_thread.run_sync(lambda: cli("logs", "--json", env=resident_env))
    assert {json.loads(line)["run_id"] for line in logs.stdout.splitlines()} >= {answer["run_id"], run_id}
    status = await anyio.to_thread.run_sync(lambda: cli("serve", "--status", env=resident_env))
    assert status.returncode == 1


THIN_CLIENT = """
import json, runpy, sys
sys.argv = ["llmmixer", *sys.argv[1:]]
try:
    runpy.run_module("llmmixer", run_name="__main__")
except SystemExit as exit:
    code = exit.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {
    "mcp", "mcp_types", "starlette", "uvicorn", "sse_starlette", "anthropic", "openai", "google"})
sys.stderr.write("HEAVY " + json.dumps(heavy) + "\\n")
sys.exit(code)
"""


async def test_the_thin_client_imports_no_sdk_no_mcp_no_web_stack(resident_env: dict[str, str]) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", THIN_CLIENT, *args], capture_output=True, text=True,
                              env=resident_env, timeout=120)

    for args in (("ask", "hi", "--models", "claude"), ("ask", "hi", "--json"), ("servers", "--json"),
                 ("models", "--json")):
        done = await anyio.to_thread.run_sync(lambda: run(*args))
        assert done.returncode == 0, (args, done.stderr)
        heavy = json.loads(done.stderr.rsplit("HEAVY ", 1)[1])
        assert heavy == [], (args, heavy)
    assert len(runtime_files()) == 1


async def test_a_stale_runtime_file_is_replaced(resident_env: dict[str, str]) -> None:
    first = await anyio.to_thread.run_sync(lambda: cli("ask", "hi", "--models", "gpt", env=resident_env))
    assert first.returncode == 0, first.stderr
    [path] = runtime_files()
    info = runtime_info(path)
    # The service dies without cleaning up (SIGKILL): its file stays, naming a dead pid.
    os.kill(info["pid"], signal.SIGKILL)
    await eventually(lambda: not alive(info["pid"]), 30)
    assert path.exists()
    second = await anyio.to_thread.run_sync(lambda: cli("ask", "hi", "--models", "gpt", env=resident_env))
    assert second.returncode == 0, second.stderr
    fresh = runtime_info(path)
    assert fresh["pid"] != info["pid"] and alive(fresh["pid"]) and fresh["token"] != info["token"]
    # `llmmixer dashboard` names the live one, token included; visiting that URL sets the cookie the page uses.
    shown = await anyio.to_thread.run_sync(lambda: cli("dashboard", "--no-open", env=resident_env))
    assert shown.stdout.strip() == f"{fresh['url']}/?token={fresh['token']}", shown
    async with httpx2.AsyncClient(timeout=30) as client:
        visit = await client.get(shown.stdout.strip())
        assert visit.status_code == 303 and "llmmixer_token" in visit.headers["set-cookie"]
        assert (await client.get(f"{fresh['url']}/api/runs")).status_code == 200  # the cookie is enough


async def test_two_configs_get_two_services(resident_env: dict[str, str], tmp_path: Path) -> None:
    pids = []
    for name, mode in (("one", "race"), ("two", "all")):
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({"settings": {"mode": mode, "models": ["gpt"]}}))
        done = await anyio.to_thread.run_sync(lambda: cli("ask", "hi", "--json", "--config", str(config),
                                                          env=resident_env))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["mode"] == mode
        status = await anyio.to_thread.run_sync(lambda: cli("serve", "--status", "--config", str(config),
                                                            env=resident_env))
        assert status.returncode == 0 and str(config) in status.stdout
        pids.append(next(runtime_info(p)["pid"] for p in runtime_files() if runtime_info(p)["config_path"] ==
                         str(config)))
    assert len(runtime_files()) == 2 and len(set(pids)) == 2 and all(alive(pid) for pid in pids)


async def test_the_service_exits_when_idle(resident_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "quick.json"
    config.write_text(json.dumps({"settings": {"idle_exit_s": 5, "models": ["gpt"]}}))
    done = await anyio.to_thread.run_sync(lambda: cli("ask", "hi", "--config", str(config), env=resident_env))
    assert done.returncode == 0, done.stderr
    [path] = runtime_files()
    pid = runtime_info(path)["pid"]
    await eventually(lambda: not alive(pid), 60)  # nobody connected, nothing running: it leaves
    assert not path.exists()  # ...and takes its runtime file along
    log = (Path(os.environ["XDG_STATE_HOME"]) / "llmmixer" / "serve.log").read_text()
    assert "idle for" in log


async def test_when_the_service_cannot_start_one_line_says_so_and_the_ask_runs_standalone(
        resident_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {**resident_env, "XDG_STATE_HOME": str(blocker / "state")}  # the service's log cannot be made
    done = await anyio.to_thread.run_sync(lambda: cli("ask", "hi", "--models", "gpt", "--json", env=env))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    lines = [line for line in done.stderr.splitlines() if "resident" in line or "llmmixer:" in line]
    assert len(lines) == 1 and "resident service did not start" in lines[0] and "standalone" in lines[0], lines
    assert "cannot write its log" in lines[0]
    assert runtime_files() == []


async def test_ctrl_c_cancels_the_run_on_the_service_and_the_upstream_closes(
        resident_env: dict[str, str], emu: Any) -> None:
    warm = await anyio.to_thread.run_sync(lambda: cli("ask", "warm", "--models", "gpt", env=resident_env))
    assert warm.returncode == 0, warm.stderr
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=1000, reply="one two three four five six seven",
                      tokens=16)
    child = subprocess.Popen([LLMMIXER, "ask", "count", "--models", "claude"], env=resident_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout is not None
        shown = await anyio.to_thread.run_sync(lambda: os.read(child.stdout.fileno(), 100))  # type: ignore[union-attr]
        assert shown  # the first words have streamed
        child.send_signal(signal.SIGINT)
        code = await anyio.to_thread.run_sync(lambda: child.wait(60))
    finally:
        if child.poll() is None:
            child.kill()
    assert code == 130
    records = await eventually(lambda: [r for r in emu.requests("anthropic")
                                        if r["method"] == "POST" and r["outcome"] == "client_closed"], 30)
    assert records[0]["tokens_sent"] < 16  # closed mid-stream, not streamed to its end
    info = runtime_info(runtime_files()[0])
    async with httpx2.AsyncClient(base_url=info["url"], timeout=30,
                                  headers={"Authorization": f"Bearer {info['token']}"}) as client:
        [run] = [r for r in (await client.get("/api/runs")).json()["runs"] if r.get("prompt") == "count"]
        result = (await client.get(f"/api/runs/{run['run_id']}", params={"wait": 30})).json()
    assert result["status"] == "cancelled"
