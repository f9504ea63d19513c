"""The config file is validated with errors that name the bad key and value (issue 14 item 6; issue 17: pydantic
models with ``extra="forbid"`` instead of ``setattr``), and the servers come from the registered manifests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import server_env

from llmmixer.orchestrator.config import Settings, default_servers, load_config, model_sources
from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.servers.core.errors import InvalidInputError


def write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "llmmixer.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(("raw", "expected"), [
    ({"mcpServer": {}}, "mcpServer: unknown key; did you mean 'mcpServers'?"),
    ({"settings": {"hedge_budget": "lots"}}, 'settings.hedge_budget: Input should be a valid number'),
    ({"settings": {"hedge_budget": 3}}, "settings.hedge_budget: Input should be less than or equal to 1 (got 3)"),
    ({"settings": {"mode": "rase"}}, "settings.mode: must be one of 'race', 'all'"),
    ({"settings": {"models": []}}, "settings.models: List should have at least 1 item"),
    ({"settings": {"models": "claude"}}, 'settings.models: Input should be a valid list (got "claude")'),
    ({"settings": {"call_timeout_s": 0}}, "settings.call_timeout_s: Input should be greater than 0"),
    ({"settings": {"stor": "memory"}}, "settings.stor: unknown key; did you mean 'store'?"),
    ({"settings": []}, "settings: Input should be a valid dictionary (got [])"),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h/mcp"}}}, "mcpServers.a: needs exactly one of"),
    ({"mcpServers": {"a": {"comand": "x"}}}, "mcpServers.a.comand: unknown key; did you mean 'command'?"),
    ({"mcpServers": {"a": {"command": "x", "args": "-v"}}}, 'mcpServers.a.args: Input should be a valid list'),
    ({"mcpServers": {"a": {"command": "x", "maxConcurrency": 0}}}, "mcpServers.a.maxConcurrency: Input should be"),
    ([], "the top level must be an object"),
])
def test_a_bad_config_is_an_error_naming_the_key_and_value(tmp_path: Path, raw: Any, expected: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        load_config(write(tmp_path, raw))
    assert expected in caught.value.message and str(tmp_path) in caught.value.message


def test_a_good_config_is_read_with_dashed_or_underscored_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {
        "mcpServers": {"fast": {"command": "x", "source": "gpt", "type": "stdio", "maxConcurrency": 3}},
        "settings": {"hedge-budget": 0.5, "mode": "fallback", "models": ["fast"]}}))
    assert config.settings.hedge_budget == 0.5 and config.settings.mode == "fallback"
    spec = config.servers["fast"]
    assert spec.source == "gpt" and spec.max_concurrency == 3 and "OPENAI_API_KEY" in spec.passthrough
    assert "ANTHROPIC_API_KEY" not in spec.passthrough


def test_the_defaults_are_every_registered_server() -> None:
    assert model_sources() == ["claude", "gpt", "gemini"] == Settings().models
    servers = default_servers()
    assert list(servers) == ["claude", "gpt", "gemini", "pty"]
    assert servers["gemini"].passthrough == ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")
    assert servers["pty"].passthrough == ("LLMMIXER_PTY_POLICY", "LLMMIXER_PTY_BACKEND", "LLMMIXER_PTY_ROOTS",
                                          "LLMMIXER_AGENTS_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                                          "XDG_STATE_HOME", "XDG_RUNTIME_DIR")
    assert not {v for v in servers["pty"].passthrough if v.endswith("_API_KEY")}


@pytest.mark.e2e
def test_the_cli_reports_a_bad_config_and_an_empty_models_as_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path, {"mcpServer": {}, "settings": {"hedge_budget": "lots"}})
    llmmixer = script_path("llmmixer")
    done = subprocess.run([llmmixer, "ask", "hi", "--config", str(path)], env=server_env(None, keys=False),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "mcpServer: unknown key; did you mean 'mcpServers'?" in done.stderr
    assert "settings.hedge_budget" in done.stderr and "Traceback" not in done.stderr
    empty = subprocess.run([llmmixer, "ask", "hi", "--models", ""], env=server_env(None, keys=False),
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "--models is empty" in empty.stderr
