"""``llmmixer config claude-desktop``: printed entries, key hygiene, and a --write that keeps the user's config."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from llmmixer.orchestrator import desktop_config as dc

SECRET = "sk-test-must-never-print-0123456789"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = dc.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_printed_entries_name_keys_but_never_their_values(capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    code, out, err = run_main(capsys)
    assert code == 0
    assert SECRET not in out and SECRET not in err
    servers = json.loads(out)["mcpServers"]
    assert list(servers) == ["llmmixer-claude", "llmmixer-gpt", "llmmixer-gemini", "llmmixer-pty", "llmmixer"]
    assert servers["llmmixer-claude"]["env"] == {"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}"}
    assert "env" not in servers["llmmixer-pty"]  # the terminal server takes no key
    assert servers["llmmixer"]["args"] == ["mcp", "--max-wait-s", "45"]
    assert set(servers["llmmixer"]["env"]) == {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}
    for entry in servers.values():
        command = Path(entry["command"])
        assert command.is_absolute() and command.is_file() and os.access(command, os.X_OK)


def test_with_env_copies_values_and_base_urls_that_are_set(capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("GOOGLE_API_KEY", "g-key")
    code, out, err = run_main(capsys, "--servers", "claude,gemini,gpt", "--with-env")
    servers = json.loads(out)["mcpServers"]
    assert code == 0
    assert servers["llmmixer-claude"]["env"] == {"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"}
    assert servers["llmmixer-gemini"]["env"] == {"GOOGLE_API_KEY": "g-key"}  # the SDK's alternate name stands in
    assert servers["llmmixer-gpt"]["env"] == {"OPENAI_API_KEY": "${OPENAI_API_KEY}"}  # unset: still a name
    assert "replace each ${NAME}" in err


def test_unknown_server_is_a_clear_error(capsys):
    code, out, err = run_main(capsys, "--servers", "claude,llama")
    assert code == 2 and out == ""
    assert "unknown server 'llama'" in err


def test_claude_code_lines_are_shell_commands_that_expand_the_key_names(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code, out, _ = run_main(capsys, "--format", "claude-code", "--servers", "gpt,orchestrator")
    assert code == 0 and SECRET not in out
    lines = out.strip().splitlines()
    assert len(lines) == 2
    words = shlex.split(lines[1], posix=True)
    assert words[:8] == ["claude", "mcp", "add", "--transport", "stdio", "--scope", "user", "llmmixer"]
    assert "OPENAI_API_KEY=$OPENAI_API_KEY" in words  # double-quoted "$NAME": the user's shell fills it in
    tail = words[words.index("--") + 1:]
    assert Path(tail[0]).name == "llmmixer" and tail[1:] == ["mcp", "--max-wait-s", "45"]


def test_default_config_path_per_platform():
    env = {"HOME": "/h", "APPDATA": "C:/Users/u/AppData/Roaming"}
    assert dc.default_config_path("darwin", env) == Path("/h/Library/Application Support/Claude/claude_desktop_config.json")
    assert dc.default_config_path("win32", env) == Path("C:/Users/u/AppData/Roaming/Claude/claude_desktop_config.json")
    assert dc.default_config_path("linux", env) == Path("/h/.config/Claude/claude_desktop_config.json")
    assert dc.default_config_path("linux", {**env, dc.CONFIG_PATH_ENV: "/x/c.json"}) == Path("/x/c.json")


EXISTING = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/é 📁"]},
        "llmmixer-claude": {"command": "/old/path/llmmixer-claude", "args": [], "env": {"ANTHROPIC_API_KEY": "sk-mine"}},
        "weather": {"url": "https://example.com/mcp", "headers": {"X": "1"}},
    },
    "preferences": {"theme": "dark", "nested": [1, 2.5, None, True]},
}


def test_write_keeps_every_other_entry_backs_up_and_is_idempotent(capsys, tmp_path, monkeypatch):
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    path.parent.mkdir()
    original = json.dumps(EXISTING, indent=4, ensure_ascii=False)
    path.write_text(original, encoding="utf-8")
    monkeypatch.setenv(dc.CONFIG_PATH_ENV, str(path))

    code, out, _ = run_main(capsys, "--write")
    assert code == 0 and "backup" in out
    merged = json.loads(path.read_text(encoding="utf-8"))
    # Every entry we do not own keeps its meaning, in its place.
    assert merged["globalShortcut"] == EXISTING["globalShortcut"]
    assert merged["preferences"] == EXISTING["preferences"]
    for name in ("filesystem", "weather"):
        assert merged["mcpServers"][name] == EXISTING["mcpServers"][name]
    assert list(merged)[:3] == ["globalShortcut", "mcpServers", "preferences"]
    # Ours is updated to the installed script, and the key the user typed in is not replaced by a placeholder.
    claude = merged["mcpServers"]["llmmixer-claude"]
    assert claude["command"] == dc.script_path("llmmixer-claude")
    assert claude["env"] == {"ANTHROPIC_API_KEY": "sk-mine"}
    assert {"llmmixer-gpt", "llmmixer-gemini", "llmmixer-pty", "llmmixer"} <= set(merged["mcpServers"])
    backups = list(path.parent.glob("claude_desktop_config.json.*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == original

    after_first = path.read_bytes()
    code, out, _ = run_main(capsys, "--write")
    assert code == 0 and "already up to date" in out
    assert path.read_bytes() == after_first
    assert len(list(path.parent.glob("claude_desktop_config.json.*.bak"))) == 1


def test_write_creates_a_missing_config(capsys, tmp_path):
    path = tmp_path / "new" / "claude_desktop_config.json"
    code, _, _ = run_main(capsys, "--write", "--servers", "pty", "--config-path", str(path))
    assert code == 0
    assert json.loads(path.read_text())["mcpServers"]["llmmixer-pty"]["command"] == dc.script_path("llmmixer-pty")
    assert list(path.parent.glob("*.bak")) == []


def test_write_refuses_a_malformed_config_and_leaves_it_untouched(capsys, tmp_path):
    path = tmp_path / "claude_desktop_config.json"
    path.write_text('{"mcpServers": {"x": ', encoding="utf-8")
    code, _, err = run_main(capsys, "--write", "--config-path", str(path))
    assert code == 1 and "not valid JSON" in err
    assert path.read_text(encoding="utf-8") == '{"mcpServers": {"x": '
    assert list(tmp_path.glob("*.bak")) == []
