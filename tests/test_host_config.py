"""``llmmixer config HOST`` for every host: each printed config passes that host's schema, keys go where the host
passes them, the timeouts sit above the orchestrator's longest wait, and ``--write`` merges safely (a backup,
idempotent, every other server and setting kept, TOML comments included). The three CLI hosts are also started
with the written config (``test_hosts.py``); Codex reads ours with its own parser here too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmmixer.orchestrator.host_config import CLAUDE_CODE_CONNECT_WAIT_MS, HOSTS, TIMEOUT_MARGIN_S
from tests.agent_support import NODE_BIN

LLMMIXER = str(Path(sys.executable).with_name("llmmixer"))
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-value", "OPENAI_API_KEY": "sk-oai-value", "GEMINI_API_KEY": "g-value"}

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_ARGS = {"type": "array", "items": {"type": "string"}}


def _servers(entry: dict[str, Any], key: str = "mcpServers", **top: Any) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {
        key: {"type": "object", "additionalProperties": {"type": "object", "required": ["command"],
                                                          "additionalProperties": False, "properties": entry}},
        **top}}


# Each host's documented server entry (stdio), strict: a field the host does not know fails.
SCHEMAS: dict[str, dict[str, Any]] = {
    # Claude Desktop: command, args, env (docs: modelcontextprotocol.io/quickstart/user).
    "claude-desktop": _servers({"command": {"type": "string"}, "args": _ARGS, "env": _STRINGS}),
    # Claude Code's own zod schema for a stdio server (type?, command, args, env, timeout ms, alwaysLoad); its
    # global config's env (strings) is applied to Claude Code itself.
    "claude-code": _servers({"type": {"const": "stdio"}, "command": {"type": "string", "minLength": 1},
                             "args": _ARGS, "env": _STRINGS, "timeout": {"type": "integer", "minimum": 1},
                             "alwaysLoad": {"type": "boolean"}}, env=_STRINGS),
    # Gemini CLI settings.json mcpServers (docs: gemini-cli docs/tools/mcp-server.md).
    "gemini-cli": _servers({"command": {"type": "string"}, "args": _ARGS, "env": _STRINGS, "cwd": {"type": "string"},
                            "timeout": {"type": "integer", "minimum": 1}, "trust": {"type": "boolean"}}),
    # Cursor mcp.json (docs: cursor.com/docs/context/mcp): command, args, env with ${env:NAME}.
    "cursor": _servers({"type": {"const": "stdio"}, "command": {"type": "string"}, "args": _ARGS, "env": _STRINGS,
                        "envFile": {"type": "string"}}),
    # VS Code mcp.json (docs: code.visualstudio.com/docs/copilot/customization/mcp-servers): "servers" + "inputs".
    "vscode": _servers({"type": {"const": "stdio"}, "command": {"type": "string"}, "args": _ARGS, "env": _STRINGS,
                        "envFile": {"type": "string"}, "cwd": {"type": "string"}}, key="servers", inputs={
        "type": "array", "items": {"type": "object", "required": ["type", "id", "description"],
                                   "additionalProperties": False,
                                   "properties": {"type": {"const": "promptString"}, "id": {"type": "string"},
                                                  "description": {"type": "string"},
                                                  "password": {"type": "boolean"}}}}),
}


def config(host: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run([LLMMIXER, "config", host, *args], capture_output=True, text=True, timeout=120,
                          env={**environ, **(env or {})})


def printed(host: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = config(host, *args, env=env)
    assert done.returncode == 0, done.stderr
    if HOSTS[host].syntax == "toml":
        import tomllib

        return tomllib.loads(done.stdout)
    return json.loads(done.stdout)


@pytest.mark.parametrize("host", [h for h in HOSTS if h != "codex"])
def test_each_json_config_passes_its_hosts_schema_and_names_keys_its_way(host: str) -> None:
    document = printed(host, env=KEYS)
    jsonschema.validate(document, SCHEMAS[host])
    text = json.dumps(document)
    assert not any(value in text for value in KEYS.values()), "a key value without --with-env"
    servers = document[HOSTS[host].servers_key]
    assert {"llmmixer", "llmmixer-claude", "llmmixer-gpt", "llmmixer-gemini", "llmmixer-pty"} <= set(servers)
    orchestrator = servers["llmmixer"]
    env = orchestrator.get("env", {})
    if host == "claude-code":  # inherits Claude Code's environment; its first turn waits for our start
        assert env == {} and orchestrator["alwaysLoad"] is True
        assert document["env"] == {"MCP_CONNECT_TIMEOUT_MS": str(CLAUDE_CODE_CONNECT_WAIT_MS)}
    else:
        expected = {"claude-desktop": "${ANTHROPIC_API_KEY}", "gemini-cli": "${ANTHROPIC_API_KEY}",
                    "cursor": "${env:ANTHROPIC_API_KEY}", "vscode": "${input:llmmixer-anthropic-api-key}"}[host]
        assert env["ANTHROPIC_API_KEY"] == expected
    if host == "vscode":  # every input it refers to is declared, as a password prompt
        ids = {i["id"] for i in document["inputs"]}
        refs = {v[len("${input:"):-1] for s in servers.values() for v in s.get("env", {}).values()}
        assert refs == ids and all(i["password"] for i in document["inputs"])
    # The longest wait sits below the host's tool timeout.
    wait = float(orchestrator["args"][orchestrator["args"].index("--max-wait-s") + 1])
    timeout = HOSTS[host].tool_timeout_s
    if HOSTS[host].timeout_field is not None:
        field, per_second = HOSTS[host].timeout_field  # type: ignore[misc]
        timeout = orchestrator[field] / per_second
    assert wait == timeout - TIMEOUT_MARGIN_S and wait > 0


def test_with_env_puts_the_values_in_for_every_host() -> None:
    for host in HOSTS:
        document = printed(host, "--with-env", "--servers", "orchestrator", env=KEYS)
        entry = document[HOSTS[host].servers_key]["llmmixer"]
        assert entry["env"]["ANTHROPIC_API_KEY"] == KEYS["ANTHROPIC_API_KEY"], host
        assert "env_vars" not in entry


def test_codex_forwards_keys_by_name_and_reads_our_config(tmp_path: Path) -> None:
    document = printed("codex", env=KEYS)
    entry = document["mcp_servers"]["llmmixer"]
    assert "env" not in entry and {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"} <= set(entry["env_vars"])
    assert entry["tool_timeout_sec"] - TIMEOUT_MARGIN_S == float(entry["args"][-1])
    assert entry["required"] is True and entry["startup_timeout_sec"] >= 30
    codex = NODE_BIN / "codex"
    if not codex.exists():
        pytest.skip("Codex is not installed under .ci/node")
    home = tmp_path / "codex"
    home.mkdir()
    assert config("codex", "--write", "--config-path", str(home / "config.toml")).returncode == 0
    listed = subprocess.run([str(codex), "mcp", "get", "llmmixer", "--json"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CODEX_HOME": str(home), "HOME": str(tmp_path)})
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["transport"]["command"] == entry["command"]


CODEX_EXISTING = '''# my settings
model = "o3"

[mcp_servers.docs]
command = "npx"  # the docs server
args = ["-y", "docs-mcp"]

[mcp_servers.llmmixer.env]
OPENAI_API_KEY = "sk-typed-by-me"
'''


def test_write_merges_toml_keeps_comments_and_other_servers_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CODEX_EXISTING)
    done = config("codex", "--write", "--with-env", "--servers", "orchestrator", "--config-path", str(path),
                  env={"OPENAI_API_KEY": "sk-from-env"})
    assert done.returncode == 0 and "backup" in done.stdout, done.stderr
    text = path.read_text()
    assert "# my settings" in text and "# the docs server" in text
    import tomllib

    merged = tomllib.loads(text)
    assert merged["model"] == "o3" and merged["mcp_servers"]["docs"] == {"command": "npx", "args": ["-y", "docs-mcp"]}
    assert merged["mcp_servers"]["llmmixer"]["env"]["OPENAI_API_KEY"] == "sk-from-env"
    backups = list(tmp_path.glob("config.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == CODEX_EXISTING
    before = path.read_bytes()
    again = config("codex", "--write", "--with-env", "--servers", "orchestrator", "--config-path", str(path),
                   env={"OPENAI_API_KEY": "sk-from-env"})
    assert again.returncode == 0 and "already up to date" in again.stdout
    assert path.read_bytes() == before and len(list(tmp_path.glob("*.bak"))) == 1


def test_claude_code_gets_our_connect_wait_unless_the_user_set_one(tmp_path: Path) -> None:
    """The user config's env raises how long Claude Code's first turn waits for our server; a value the user set
    (and every other variable and setting) is kept; a project's .mcp.json, which has no env, gets none."""
    path = tmp_path / ".claude.json"
    mine = {"numStartups": 3, "env": {"MY_VAR": "1"}}
    path.write_text(json.dumps(mine))
    assert config("claude-code", "--write", "--servers", "orchestrator", "--config-path", str(path)).returncode == 0
    merged = json.loads(path.read_text())
    assert merged["env"] == {"MY_VAR": "1", "MCP_CONNECT_TIMEOUT_MS": str(CLAUDE_CODE_CONNECT_WAIT_MS)}
    assert merged["numStartups"] == 3
    path.write_text(json.dumps({"env": {"MCP_CONNECT_TIMEOUT_MS": "90000"}}))
    assert config("claude-code", "--write", "--servers", "orchestrator", "--config-path", str(path)).returncode == 0
    assert json.loads(path.read_text())["env"] == {"MCP_CONNECT_TIMEOUT_MS": "90000"}
    assert "env" not in printed("claude-code", "--scope", "project")


def test_write_keeps_a_typed_key_over_a_reference_and_merges_vscode_inputs(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    mine = {"servers": {"other": {"type": "stdio", "command": "x"},
                        "llmmixer": {"type": "stdio", "command": "old", "env": {"ANTHROPIC_API_KEY": "sk-typed"}}},
            "inputs": [{"type": "promptString", "id": "llmmixer-openai-api-key", "description": "mine",
                        "password": True}]}
    path.write_text(json.dumps(mine))
    assert config("vscode", "--write", "--config-path", str(path)).returncode == 0
    merged = json.loads(path.read_text())
    jsonschema.validate(merged, SCHEMAS["vscode"])
    assert merged["servers"]["other"] == mine["servers"]["other"]
    assert merged["servers"]["llmmixer"]["env"]["ANTHROPIC_API_KEY"] == "sk-typed"
    ids = [i["id"] for i in merged["inputs"]]
    assert len(ids) == len(set(ids)) and merged["inputs"][0]["description"] == "mine"


def test_write_refuses_a_malformed_file_and_leaves_it_untouched(tmp_path: Path) -> None:
    for host, name, body in (("codex", "config.toml", "[mcp_servers\n"), ("gemini-cli", "settings.json", "{"),
                             ("cursor", "mcp.json", '{"mcpServers": []}')):
        path = tmp_path / name
        path.write_text(body)
        done = config(host, "--write", "--config-path", str(path))
        assert done.returncode == 1 and "error:" in done.stderr, (host, done.stderr)
        assert path.read_text() == body and not list(tmp_path.glob(f"{name}.*.bak"))


def test_project_scope_writes_the_projects_file(tmp_path: Path) -> None:
    for host, relative in (("claude-code", ".mcp.json"), ("gemini-cli", ".gemini/settings.json"),
                           ("cursor", ".cursor/mcp.json"), ("vscode", ".vscode/mcp.json")):
        done = subprocess.run([LLMMIXER, "config", host, "--write", "--scope", "project", "--servers", "pty"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "llmmixer-pty" in json.loads((tmp_path / relative).read_text())[HOSTS[host].servers_key]
    refused = config("codex", "--scope", "project")
    assert refused.returncode == 2 and "--scope" in refused.stderr
