"""Shared fixtures. Every test's state lives in its own tmp dir; nothing reads the user's real config."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The e2e tier: tests that need real server processes, real MCP hosts (Node clients, Claude Code, Codex) or a real
# browser. ``pytest -m "not e2e"`` runs the rest (servers in process, over the inprocess transport) in under two
# minutes; the README's test command runs both. Whole modules are listed here; a module that is mostly in-process
# marks its few process tests itself (``@pytest.mark.e2e``). The browser and conformance markers imply e2e.
E2E_MODULES = frozenset({
    "test_adapter_servers", "test_agents_interactive", "test_agents_real", "test_cli", "test_cli_basics",
    "test_conformance", "test_containment", "test_containment_ask", "test_containment_host", "test_ctrl_c",
    "test_dashboard", "test_dashboard_history", "test_docs_commands", "test_fault_http", "test_fault_runlog",
    "test_fault_serve", "test_fault_stdio", "test_gateway_clis", "test_host_config", "test_hosts", "test_isolation",
    "test_layout", "test_mcp_server", "test_netns_support", "test_remote_bind", "test_resident",
    "test_resumable_http", "test_shutdown", "test_store_faults", "test_telemetry", "test_tool_table", "test_ts_sdk",
    "test_web_chaos",
})
E2E_MARKERS = frozenset({"browser", "conformance"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if isinstance(item, pytest.Function) else ""
        if module in E2E_MODULES or any(item.get_closest_marker(name) for name in E2E_MARKERS):
            item.add_marker(pytest.mark.e2e)


# Variables the project, the vendors' SDKs or the servers read. Whatever a developer's shell holds under these
# prefixes (LLMMIXER_CONFIG, LLMMIXER_STORE, a real ANTHROPIC_API_KEY, an OPENAI_BASE_URL...) must not reach a test.
ISOLATED_PREFIXES = ("LLMMIXER_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CLAUDE_", "CODEX_", "OTEL_")


@pytest.fixture(autouse=True)
def _isolated_user_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from nothing of the user's: a fresh HOME, XDG dirs and working directory (so no stray
    ``./llmmixer.json`` is read), and none of the project's or the vendors' variables."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    (home / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    # The CLI runs each command in its own process unless a test asks for the resident service
    # (tests/test_resident.py): a test must not leave a detached service behind.
    monkeypatch.setenv("LLMMIXER_RESIDENT", "0")
    (home / "work").mkdir()
    monkeypatch.chdir(home / "work")


# -- emulators ------------------------------------------------------------------------------------------------------

import importlib.util  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from llmmixer.servers.emulators.app import vendors  # noqa: E402
from llmmixer.servers.emulators.server import EmulatorServer  # noqa: E402

from llmmixer.servers.core.manifest import model_manifests  # noqa: E402

# A fake key for every registered model server, by its key variable (a plugin's too).
FAKE_KEYS = {m.key_vars[0]: f"sk-test-{m.name}-not-a-real-key" for m in model_manifests() if m.key_vars}
# Every key variable a server reads, alternates included: none reaches a child unless a test sets it.
KEY_VARS = frozenset(v for m in model_manifests() for v in m.key_vars)


def _available_vendors() -> tuple[str, ...]:
    return tuple(name for name, info in vendors().items() if importlib.util.find_spec(info.module) is not None)


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator server (all vendors) for the whole test session, on a free loopback port."""
    with EmulatorServer(vendors=_available_vendors(), seed=7) as server:
        yield server


@pytest.fixture
def emu(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The session emulator, reset (default behaviours, no records), with this process's SDK env pointed at it."""
    emulator.reset()
    for name, value in {**emulator.env, **FAKE_KEYS}.items():
        monkeypatch.setenv(name, value)
    return emulator


def server_env(emu: EmulatorServer | None = None, *, keys: bool = True, **extra: str) -> dict[str, str]:
    """Environment for a server subprocess: this environment, the emulator's base URLs, fake keys, ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    if emu is not None:
        env.update(emu.env)
    if keys:
        env.update(FAKE_KEYS)
    env.update(extra)
    return env


PYTHON = sys.executable
