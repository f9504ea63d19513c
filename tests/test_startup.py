"""Servers that answer at once (issue 22): ``initialize`` and ``tools/list`` need no vendor SDK, the first call may.

- In a fresh interpreter, each adapter's server object (what its console script serves) answers ``initialize``
  without ``anthropic``, ``openai`` or ``google.genai`` loaded, and ``generate`` then works through the SDK.
- A server whose adapter import is held up still answers ``tools/list``; its first call waits for the import.
- An adapter that cannot be imported fails each call with a ``server`` error naming it; the server keeps answering.
- Answer first, exit later: a stdio server whose input closes exits without the interpreter's teardown (an
  ``atexit`` probe never runs), and ``ask`` has printed its result before it closes the servers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client, StdioServerParameters

from conftest import server_env
from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.servers.claude_adapter.manifest import MANIFEST as CLAUDE
from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.lazy import LazyAdapter
from llmmixer.servers.core.mcp import build_adapter_server

pytestmark = pytest.mark.anyio

SDKS = {"claude": "anthropic", "gpt": "openai", "gemini": "google.genai"}

FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import anyio
    from mcp import Client

    SDKS = {sdks!r}

    async def main():
        out = {{}}
        for source, sdk in SDKS.items():
            module = __import__(f"llmmixer.servers.{{source}}_adapter.__main__", fromlist=["build_server"])
            server = module.build_server([])
            async with Client(server) as client:
                answered_without = sdk not in sys.modules and not any(m.startswith(sdk + ".") for m in sys.modules)
                tools = [tool.name for tool in (await client.list_tools()).tools]
                result = await client.call_tool("generate", {{"prompt": "hi"}})
            out[source] = {{"initialized_without_sdk": answered_without, "tools": tools,
                            "generated": not result.is_error, "text": result.content[0].text,
                            "sdk_after_call": sdk in sys.modules}}
        print(json.dumps(out))

    anyio.run(main)
""")


@pytest.mark.e2e
def test_each_adapter_answers_before_its_sdk_is_imported_and_generates_after(emu: Any) -> None:
    script = FRESH_PROCESS.format(sdks=SDKS)
    done = subprocess.run([sys.executable, "-c", script], env=server_env(emu), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for source in SDKS:
        assert report[source]["initialized_without_sdk"], (source, report[source])
        assert report[source]["tools"] == ["generate", "list_models"]
        assert report[source]["generated"], report[source]["text"]
        assert report[source]["sdk_after_call"]


def _held_module(name: str, release: threading.Event, entered: threading.Event) -> None:
    """Register a module whose import blocks until ``release``, then provides the real Claude adapter."""

    class Finder:
        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
            if fullname != name:
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(fullname, self)

        def create_module(self, spec: Any) -> None:
            return None

        def exec_module(self, module: types.ModuleType) -> None:
            entered.set()
            release.wait(30)
            from llmmixer.servers.claude_adapter.adapter import ClaudeAdapter

            module.Held = ClaudeAdapter  # type: ignore[attr-defined]

    sys.meta_path.insert(0, Finder())  # type: ignore[arg-type]


async def test_tools_list_is_answered_while_the_adapter_import_is_held_up_and_the_call_waits_for_it(emu: Any) -> None:
    release, entered = threading.Event(), threading.Event()
    name = "llmmixer_test_held_adapter"
    _held_module(name, release, entered)
    try:
        lazy = LazyAdapter(CLAUDE, f"{name}:Held", AdapterSettings())
        with anyio.fail_after(90):  # the SDK's import, once released, is seconds on a loaded machine
            async with Client(build_adapter_server(lazy)) as client:
                tools = await client.list_tools()  # answered: the import has not even begun
                assert [tool.name for tool in tools.tools] == ["generate", "list_models"]
                while not entered.is_set():  # listing the tools started the import in the background
                    await anyio.sleep(0.01)
                assert (await client.list_tools()).tools  # still answering while the import is held up
                outcome: dict[str, Any] = {}

                async def call() -> None:
                    outcome["result"] = await client.call_tool("generate", {"prompt": "hi"})

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await anyio.sleep(0.05)
                    assert "result" not in outcome  # the first call waits for the import
                    release.set()
                assert not outcome["result"].is_error, outcome["result"].content
    finally:
        release.set()
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "Finder"]
        sys.modules.pop(name, None)


async def test_an_adapter_that_cannot_be_imported_fails_each_call_and_the_server_keeps_answering() -> None:
    lazy = LazyAdapter(CLAUDE, "llmmixer_no_such_module_for_tests:Nope", AdapterSettings())
    with anyio.fail_after(30):
        async with Client(build_adapter_server(lazy)) as client:
            for _ in range(2):
                result = await client.call_tool("generate", {"prompt": "hi"})
                assert result.is_error
                error = json.loads(result.content[1].text)["error"]
                assert error["kind"] == "server" and result.content[0].text.startswith("server: ")
                assert "llmmixer_no_such_module_for_tests" in error["message"]
            assert (await client.list_tools()).tools


# -- answer first, exit later ------------------------------------------------------------------------------------

# Next to itself, so it survives the PTY runner's re-execution with a scrubbed environment (PYTHONPATH is kept).
ATEXIT_PROBE = """
import atexit, os
marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "teardown")
atexit.register(lambda: open(marker, "w").write("interpreter teardown ran"))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["claude", "pty"])
async def test_a_stdio_server_answers_then_exits_without_the_interpreter_teardown(source: str, emu: Any,
                                                                                  tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(ATEXIT_PROBE)
    marker = site / "teardown"
    env = server_env(emu, keys=source != "pty", PYTHONPATH=str(site))
    module = "llmmixer.servers.claude_adapter" if source == "claude" else "llmmixer.servers.pty_runner"
    args = ["-m", module] + ([] if source == "claude" else ["--sandbox", "off", "--backend", "pipe"])
    tool, arguments = ("generate", {"prompt": "hi"}) if source == "claude" else ("run", {"command": "echo hi"})
    with anyio.fail_after(60):
        async with Client(StdioServerParameters(command=sys.executable, args=args, env=env)) as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            pid_probe = psutil.Process().children(recursive=True)
            servers = [p for p in pid_probe if module in " ".join(p.cmdline())]
            assert servers
        # The client has closed the server's stdin and seen it exit.
        for server in servers:
            assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    # The probe proves sitecustomize ran in the child (a normal exit writes the marker: checked just below).
    assert not marker.exists()
    done = subprocess.run([sys.executable, "-c", "pass"], env=env, timeout=60)
    assert done.returncode == 0 and marker.exists()


@pytest.mark.e2e
def test_ask_prints_its_result_before_the_servers_are_closed(emu: Any, tmp_path: Path) -> None:
    """The adapter runs under a shell that, once the orchestrator has closed the adapter, copies what ``ask`` has
    printed so far: the whole JSON result must already be there."""
    printed, seen_at_close = tmp_path / "printed.json", tmp_path / "seen_at_close.json"
    adapter = f"{sys.executable} -m llmmixer.servers.claude_adapter; cat {printed} > {seen_at_close}"
    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"mcpServers": {"claude": {"command": "sh", "args": ["-c", adapter]}},
                                  "settings": {"resident": False, "models": ["claude"]}}))
    with printed.open("w") as out:
        done = subprocess.run([script_path("llmmixer"), "ask", "hi", "--json", "--standalone", "--config",
                               str(config)], env=server_env(emu), stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(printed.read_text())["winner"] == "claude"
    assert json.loads(seen_at_close.read_text()) == json.loads(printed.read_text())
