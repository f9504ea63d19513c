"""The ``llmmixer`` console script, run as a user runs it: a subprocess, real servers, the emulators."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import server_env

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")


def llmmixer(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LLMMIXER, *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_help_lists_every_command():
    done = llmmixer("--help")
    assert done.returncode == 0
    for command in ("ask", "run", "serve", "servers", "mcp", "config", "demo"):
        assert command in done.stdout


def test_ask_json_prints_one_final_object(emu):
    emu.set_behaviour("anthropic", ttft_ms=20, reply="from claude 🚀")
    emu.set_behaviour("openai", ttft_ms=600)
    emu.set_behaviour("gemini", ttft_ms=600)
    done = llmmixer("ask", "hello", "--json", env=server_env(emu))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"mode", "winner", "legs", "total_cost_usd"} <= set(result)
    assert result["mode"] == "race" and result["winner"] == "claude"
    legs = {leg["source"]: leg for leg in result["legs"]}
    assert legs["claude"]["text"] == "from claude 🚀" and legs["claude"]["status"] == "won"
    assert {legs["gpt"]["status"], legs["gemini"]["status"]} == {"cancelled"}
    for leg in result["legs"]:
        assert {"source", "status", "text", "usage", "cost_usd", "ttft_ms", "latency_ms", "error"} <= set(leg)


def test_prompt_from_stdin_and_one_model(emu):
    emu.set_behaviour("openai", reply="piped ok")
    done = llmmixer("ask", "-", "--models", "gpt", "--json", env=server_env(emu), stdin="what is 2+2?\n")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["winner"] == "gpt" and [leg["source"] for leg in result["legs"]] == ["gpt"]
    body = emu.requests("openai")[0]["body"]
    assert "what is 2+2?" in json.dumps(body)


def test_live_view_streams_each_model(emu):
    emu.set_behaviour("anthropic", reply="alpha words")
    emu.set_behaviour("gemini", reply="gamma words", ttft_ms=300)
    done = llmmixer("ask", "hi", "--models", "claude,gemini", "--mode", "all", env=server_env(emu))
    assert done.returncode == 0, done.stderr
    assert "alpha words" in done.stdout and "gamma words" in done.stdout
    assert "claude" in done.stdout and "gemini" in done.stdout


@pytest.mark.parametrize("args, message", [
    (("ask", "hi", "--mode", "fastest"), "--mode"),
    (("ask", "hi", "--store", "postgres://x"), "store"),
    (("ask", "hi", "--models", "claude,llama"), "llama"),
    (("ask", "   "), "empty"),
    (("ask", "hi", "--model-for", "claude"), "SOURCE=MODEL"),
])
def test_usage_errors_exit_2_with_a_clear_message(emu, args: tuple[str, ...], message: str):
    done = llmmixer(*args, env=server_env(emu))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr


def test_all_legs_failing_exits_1(emu):
    emu.set_behaviour("anthropic", error={"status": 401})
    emu.set_behaviour("openai", error={"status": 400, "type": "context_length_exceeded"})
    done = llmmixer("ask", "hi", "--models", "claude,gpt", "--json", env=server_env(emu))
    assert done.returncode == 1
    result: dict[str, Any] = json.loads(done.stdout)
    assert {leg["error"]["kind"] for leg in result["legs"]} == {"auth", "context_length"}
    assert "sk-" not in done.stdout + done.stderr  # keys never printed


def test_demo_runs_with_no_key_and_no_config(tmp_path):
    env = server_env(None, keys=False)
    done = subprocess.run([LLMMIXER, "demo", "--json"], capture_output=True, text=True, env=env, timeout=90,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["winner"] in ("claude", "gpt", "gemini")
    assert sorted(result["upstream_close_ms"]) == sorted({"claude", "gpt", "gemini"} - {result["winner"]})


def test_run_streams_output_and_passes_the_exit_code_through(tmp_path):
    done = subprocess.run([LLMMIXER, "run", "printf 'one\\ntwo\\n'; exit 3"], capture_output=True, text=True,
                          env=server_env(None, keys=False), timeout=60, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.replace("\r\n", "\n") == "one\ntwo\n"


def test_run_refused_by_policy_is_a_policy_error(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\ndefault = "allow"\ndeny = ["rm"]\n')
    env = server_env(None, keys=False, LLMMIXER_PTY_POLICY=str(policy))
    done = subprocess.run([LLMMIXER, "run", "echo ok; rm -rf /tmp/x"], capture_output=True, text=True, env=env,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    assert "policy" in done.stderr and "rm" in done.stderr


def test_servers_reports_each_server_and_its_tools(tmp_path):
    done = subprocess.run([LLMMIXER, "servers", "--json"], capture_output=True, text=True,
                          env=server_env(None, keys=False), timeout=60, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # started, but no model server has its key (test_traps.py)
    servers = {s["name"]: s for s in json.loads(done.stdout)}
    assert set(servers) == {"claude", "gpt", "gemini", "pty"}
    assert all(s["status"] == "ready" and s["transport"] == "stdio" for s in servers.values())
    assert [servers[name]["key_set"] for name in ("claude", "gpt", "gemini")] == [False, False, False]
    assert {"generate", "list_models"} <= set(servers["claude"]["tools"])
    assert {"run", "start", "send", "read", "wait", "kill"} <= set(servers["pty"]["tools"])
    from llmmixer.servers.pty_runner.sandbox import probe

    expected = "sandbox on (bubblewrap" if probe() is None else "sandbox off"
    assert (servers["pty"]["info"] or "").startswith(expected), servers["pty"]  # the PTY runner says where it stands
    assert all(s["cooling_until"] is None for s in servers.values())


def test_servers_shows_a_cooldown_an_earlier_run_left(tmp_path, monkeypatch):
    from llmmixer.orchestrator.cooldown import Cooldowns, default_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    Cooldowns(path=default_path()).note_error("gpt", {"kind": "rate_limit", "retry_after_s": 300})
    env = server_env(None, keys=False)
    done = subprocess.run([LLMMIXER, "servers", "--json"], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)
    servers = {s["name"]: s for s in json.loads(done.stdout)}
    assert servers["gpt"]["cooling_until"] and "rate_limit" in servers["gpt"]["cooldown_reason"]
    assert servers["claude"]["cooling_until"] is None


def test_serve_runs_a_race_over_http_and_refuses_a_public_bind_without_a_token(emu, tmp_path):
    import httpx2

    from llmmixer.servers.emulators.server import free_port

    refused = subprocess.run([LLMMIXER, "serve", "--host", "0.0.0.0"], capture_output=True, text=True,
                             env=server_env(emu), timeout=30)
    assert refused.returncode == 2 and "LLMMIXER_TOKEN" in refused.stderr

    port = free_port()
    server = subprocess.Popen([LLMMIXER, "serve", "--port", str(port)], env=server_env(emu, LLMMIXER_TOKEN="t0ken"),
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                           headers={"Authorization": "Bearer t0ken"}) as client:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                time.sleep(0.05)
            started = client.post("/api/runs", json={"prompt": "hi", "models": ["gpt", "gemini"], "mode": "all"})
            assert started.status_code in (200, 202), started.text
            run_id = started.json()["run_id"]
            result = client.get(f"/api/runs/{run_id}", params={"wait": 30}).json()
            assert result["status"] == "done" and {leg["status"] for leg in result["legs"]} == {"done"}
            assert client.get("/api/runs/nope!").status_code == 400
    finally:
        server.terminate()
        assert server.wait(15) is not None
    assert "sk-" not in (server.stderr.read() if server.stderr else "")
