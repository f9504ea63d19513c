"""CLI basics a user of llm expects, as a subprocess against the emulators: ``--version``, ``python -m llmmixer``,
``models``, ``-m MODEL_ID`` finding its server, plain text off a terminal, and ``logs`` reading the run log of a
SQLite store after the processes that wrote it are gone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import server_env
from test_cli import llmmixer

from llmmixer import __version__


def test_version_and_python_dash_m():
    done = llmmixer("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"llmmixer {__version__}"
    module = subprocess.run([sys.executable, "-m", "llmmixer", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert module.returncode == 0 and module.stdout.strip() == f"llmmixer {__version__}"
    helped = subprocess.run([sys.executable, "-m", "llmmixer", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "logs" in helped.stdout and "models" in helped.stdout


def test_models_lists_every_servers_models_defaults_and_aliases(emu):
    done = llmmixer("models", "--json", env=server_env(emu))
    assert done.returncode == 0, done.stderr
    servers = {s["source"]: s for s in json.loads(done.stdout)["servers"]}
    assert set(servers) == {"claude", "gpt", "gemini"}
    claude = {m["id"]: m for m in servers["claude"]["models"]}
    assert servers["claude"]["default_model"] == "claude-haiku-4-5"
    assert claude["claude-haiku-4-5-20251001"]["default"] is True
    assert {"claude", "claude-haiku-4-5"} <= set(claude["claude-haiku-4-5-20251001"]["aliases"])
    assert claude["claude-opus-4-6"]["price_per_million"] == [5.0, 25.0]
    text = llmmixer("models", env=server_env(emu))
    assert text.returncode == 0 and "claude-sonnet-4-6" in text.stdout and "gemini-2.5-flash" in text.stdout


def test_dash_m_takes_a_model_id_or_alias_and_finds_its_server(emu):
    done = llmmixer("ask", "hi", "-m", "claude-opus-4-6", "-m", "gpt-5", "--mode", "all", "--json",
                    "--store", "memory", env=server_env(emu))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(leg["source"] for leg in result["legs"]) == ["claude", "gpt"]
    generated = [r for r in emu.requests() if r["method"] == "POST"]
    assert {r["vendor"]: r["body"]["model"] for r in generated} == {"anthropic": "claude-opus-4-6", "openai": "gpt-5"}
    alias = llmmixer("ask", "hi", "-m", "claude-sonnet-4-5", "--json", "--store", "memory", env=server_env(emu))
    assert alias.returncode == 0, alias.stderr
    assert [leg["source"] for leg in json.loads(alias.stdout)["legs"]] == ["claude"]
    unknown = llmmixer("ask", "hi", "-m", "llama-9", "--store", "memory", env=server_env(emu))
    assert unknown.returncode == 2 and "llama-9" in unknown.stderr and "llmmixer models" in unknown.stderr


def test_piped_output_is_plain_text(emu):
    emu.set_behaviour("anthropic", reply="plain claude words")
    emu.set_behaviour("gemini", reply="plain gemini words")
    done = llmmixer("ask", "hi", "--models", "claude,gemini", "--mode", "all", "--store", "memory",
                    env=server_env(emu))
    assert done.returncode == 0, done.stderr
    assert "plain claude words" in done.stdout and "plain gemini words" in done.stdout
    assert not set("╭╮╰╯│─━") & set(done.stdout), done.stdout
    assert "== claude [done]" in done.stdout and "mode all" in done.stdout


def test_logs_show_prompts_after_a_restart_on_sqlite(emu, tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'logs.db'}"
    env = server_env(emu)
    emu.set_behaviour("anthropic", reply="the first answer", ttft_ms=10)
    # The others never answer: claude wins however long its server takes to load its SDK on this first call.
    emu.set_behaviour("openai", hang=True)
    emu.set_behaviour("gemini", hang=True)
    first = llmmixer("ask", "the first question", "--json", "--store", store, env=env)
    assert first.returncode == 0, first.stderr
    run_id, cid = json.loads(first.stdout)["run_id"], json.loads(first.stdout)["conversation_id"]
    emu.set_behaviour("openai")  # answers again
    second = llmmixer("ask", "a different question", "--models", "gpt", "--json", "--store", store, env=env)
    assert second.returncode == 0, second.stderr

    # Every process that ran those is gone; logs reads the database alone.
    listed = llmmixer("logs", "--store", store, env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index("a different question") < listed.stdout.index("the first question")
    assert "the first answer" in listed.stdout
    found = llmmixer("logs", "-q", "FIRST question", "--json", "--store", store, env=env)
    records = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["run_id"] for r in records] == [run_id] and records[0]["prompt"] == "the first question"
    assert records[0]["models"] == ["claude", "gpt", "gemini"] and records[0]["mode"] == "race"
    assert [json.loads(line)["run_id"] for line in llmmixer("logs", "--cid", cid, "--json", "--store", store,
                                                            env=env).stdout.splitlines()] == [run_id]
    assert len(llmmixer("logs", "-n", "1", "--json", "--store", store, env=env).stdout.splitlines()) == 1

    shown = llmmixer("logs", "show", run_id, "--timeline", "--store", store, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "prompt: the first question" in shown.stdout and "the first answer" in shown.stdout
    bars = {line.split()[0]: line for line in shown.stdout.splitlines() if "|" in line}
    assert set(bars) == {"claude", "gpt", "gemini"}
    assert "★" in bars["claude"] and "won" in bars["claude"]
    assert "✗" in bars["gpt"] and "cancelled" in bars["gpt"]
    # The winner's end marker stands at the same column as the losers' cancellation, on the shared axis.
    assert abs(bars["claude"].index("★") - bars["gpt"].index("✗")) <= 2
    missing = llmmixer("logs", "show", "0000000000000000", "--store", store, env=env)
    assert missing.returncode == 1 and "no run" in missing.stderr


def test_live_panels_start_in_place_and_a_tall_answer_scrolls():
    from rich.console import Console

    from llmmixer.orchestrator.live import render_columns

    console = Console(width=120, height=20, record=True, force_terminal=True, color_system=None)
    console.print(render_columns(["claude", "gpt", "gemini"], {}, {}, console=console, max_lines=10))
    first = console.export_text()
    assert first.count("starting") == 3  # a panel per leg before any token, in its final column
    def corners(line: str) -> list[int]:
        return [i for i, char in enumerate(line) if char == "╭"]

    columns = corners(first.splitlines()[0])
    assert len(columns) == 3

    tall = "\n".join(f"line {i}" for i in range(200))
    console = Console(width=120, height=20, record=True, force_terminal=True, color_system=None)
    console.print(render_columns(["claude", "gpt", "gemini"], {"claude": tall, "gpt": "short"}, {},
                                 console=console, max_lines=10))
    text = console.export_text()
    assert len(text.splitlines()) <= 12  # the panels never grow past the terminal
    assert "line 199" in text and "line 0\n" not in text  # the newest lines are the ones shown
    assert corners(text.splitlines()[0]) == columns  # the same three columns as before the first token


def test_serve_prints_its_url_and_starts_every_server_at_once(emu, tmp_path: Path):
    import httpx2

    from llmmixer.servers.emulators.server import free_port

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "llmmixer"), "serve", "--port", str(port)],
                              env=server_env(emu), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        # No LLMMIXER_TOKEN: the service made one, and the URL it prints carries it (visiting it sets the cookie).
        url = re.search(rf"http://127\.0\.0\.1:{port}/\?token=(\S+)", first)
        assert url, first
        token = url.group(1)
        # Without any request, every server comes up and says so.
        states = {}
        while len(states) < 4:
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else ""
            name, _, rest = line.strip().partition(": ")
            states[name] = rest.split()[0]
        assert states == {"claude": "ready", "gpt": "ready", "gemini": "ready", "pty": "ready"}, states
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/api/servers", params={"wait": 0}).status_code == 401  # loopback needs it too
            listed = client.get("/api/servers", params={"wait": 0},
                                headers={"Authorization": f"Bearer {token}"}).json()["servers"]
        assert {s["name"]: s["status"] for s in listed} == states
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_chat_loops_over_one_conversation(emu, tmp_path: Path):
    emu.queue("anthropic", {"reply": "Blue, mostly."}, {"reply": "Because of Rayleigh scattering."})
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    done = llmmixer("chat", "--models", "claude", "--store", store, env=server_env(emu),
                    stdin="What colour is the sky?\n\nWhy?\nexit\nnever sent\n")
    assert done.returncode == 0, done.stderr
    assert "Blue, mostly." in done.stdout and "Rayleigh" in done.stdout
    posts = [r for r in emu.requests("anthropic") if r["method"] == "POST"]
    assert len(posts) == 2  # the blank line is skipped and nothing after `exit` is sent
    assert [m["role"] for m in posts[1]["body"]["messages"]] == ["user", "assistant", "user"]
    assert "Blue, mostly." in json.dumps(posts[1]["body"]["messages"][1])
    records = llmmixer("logs", "--json", "--store", store, env=server_env(emu)).stdout.splitlines()
    assert len({json.loads(line)["conversation_id"] for line in records}) == 1 and len(records) == 2
