"""Issue 24 item 1: a number from outside (a vendor's Retry-After, the config, cooldowns.json) cannot break
``serve``: each is finite and clamped where it enters, a damaged state file is set aside, and one run's bad
state cannot stop the run scheduler.

The ``serve`` tests run the console script against the emulators, as a user would, with ``max_cooldown_s``
lowered so "that vendor answers again after the clamped window" is seen without waiting an hour.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import server_env
from reliability_support import serve, until

from llmmixer.orchestrator.config import InvalidInputError, load_config
from llmmixer.orchestrator.cooldown import Cooldowns
from llmmixer.servers.core.bounds import MAX_WAIT_S
from llmmixer.servers.core.errors import RateLimitError, error_from_dict, retry_after_s

pytestmark = pytest.mark.anyio


def legs(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {leg["source"]: leg for leg in snap["legs"]}


@pytest.mark.parametrize("headers", [{"retry-after": "1e300"}, {"retry-after-ms": "1e308"},
                                     {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
                                     {"llm_provider-retry-after": "99999999999"}])
def test_a_vendors_wait_is_clamped_to_an_hour_and_logged(headers: dict[str, str], caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, "llmmixer.bounds"):
        error = RateLimitError("slow down", vendor="anthropic", retry_after_s=retry_after_s(headers))
    assert error.retry_after_s == MAX_WAIT_S
    assert "clamped to 3600" in caplog.text


@pytest.mark.parametrize("wire", [1e300, float("inf"), "1e300", -5, True, [1]])
def test_a_peers_wire_error_cannot_carry_an_unbounded_wait(wire: Any) -> None:
    waited = error_from_dict({"error": {"kind": "rate_limit", "retry_after_s": wire}}).retry_after_s
    assert waited is None or 0 <= waited <= MAX_WAIT_S


def test_cooldowns_never_outlast_the_maximum_and_a_damaged_file_is_set_aside(tmp_path: Path, caplog: Any) -> None:
    now = [1_000_000.0]
    path = tmp_path / "cooldowns.json"
    cooldowns = Cooldowns(path=path, clock=lambda: now[0], breaker_s=float("inf"), consecutive_failures=1)
    cooldowns.note_error("claude", {"kind": "rate_limit", "retry_after_s": 1e300})
    cooldowns.note_error("gpt", {"kind": "server"})
    assert cooldowns.cooling_until("claude") == cooldowns.cooling_until("gpt") == now[0] + MAX_WAIT_S
    assert "cooling down until" in (cooldowns.skip_reason("claude") or "")
    now[0] += MAX_WAIT_S
    assert cooldowns.cooling_until("claude") is None  # the clamped window is over: it is called again

    # What an older version wrote (a cooldown for millennia) is read back as at most an hour from now.
    path.write_text(json.dumps({"claude": {"until": 1e300, "reason": "rate_limit", "consecutive": 0},
                                "gpt": {"until": "soon"}}))
    reread = Cooldowns(path=path, clock=lambda: now[0])
    assert reread.cooling_until("claude") == now[0] + MAX_WAIT_S and reread.cooling_until("gpt") is None

    for damaged in (b"\xff\xfe{\x00", b'{"claude": ' * 5000, b"[1, 2]", b"Infinity"):
        path.write_bytes(damaged)
        with caplog.at_level(logging.WARNING, "llmmixer.cooldown"):
            fresh = Cooldowns(path=path, clock=lambda: now[0])
        assert fresh.cooling_until("claude") is None
        assert not path.exists() and path.with_name("cooldowns.json.damaged").read_bytes() == damaged
        assert "set aside" in caplog.text


@pytest.mark.parametrize("content, says", [
    ('{"settings": {"breaker_s": NaN}}'.encode(), "breaker_s"),
    ('{"settings": {"mode": "race"}}'.encode("utf-16"), "not UTF-8"),
    (b"\x80\x81{}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"settings": {"breaker_failures": ' + b"9" * 5000 + b"}}", "too large"),
])
def test_a_bad_config_is_a_one_line_usage_error(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "llmmixer.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as caught:
        load_config(path)
    assert says in caught.value.message and "\n" not in caught.value.message


def test_a_config_with_a_bom_and_huge_durations_loads_clamped(tmp_path: Path) -> None:
    path = tmp_path / "llmmixer.json"
    path.write_bytes(b'\xef\xbb\xbf{"settings": {"breaker_s": Infinity, "call_timeout_s": 1e999, '
                     b'"fast_retry_wait_s": 1e12}}')
    settings = load_config(path).settings
    assert (settings.breaker_s, settings.call_timeout_s, settings.fast_retry_wait_s) == (3600, 86400, 3600)


@pytest.mark.e2e
async def test_a_poisoned_retry_after_leaves_serve_answering_and_that_vendor_back_after_the_window(
        emu: Any, tmp_path: Path) -> None:
    env = server_env(emu, LLMMIXER_MAX_RETRIES="0")
    cooldown_file = tmp_path / "cooldowns.json"
    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"settings": {"cooldown_file": str(cooldown_file)}}))
    emu.set_behaviour("anthropic", error={"status": 429, "headers": {"retry-after": "1e300"}})
    async with serve(env, tmp_path, "--config", str(config)) as server:
        first = await server.ask(prompt="hi", models=["claude", "gpt"], mode="all")
        assert legs(first)["claude"]["error"]["kind"] == "rate_limit"
        assert legs(first)["claude"]["error"]["retry_after_s"] == MAX_WAIT_S
        for _ in range(3):  # the run that crashed the scheduler before, and the ones after it
            snap = await server.ask(prompt="hi", models=["claude", "gpt", "gemini"], mode="race")
            assert snap["status"] == "done" and snap["winner"] in ("gpt", "gemini")
            assert legs(snap)["claude"]["status"] == "skipped"
        health = await server.client.get("/healthz")
        assert health.status_code == 200, health.text
        servers = {s["name"]: s for s in (await server.client.get("/api/servers?wait=0")).json()["servers"]}
        assert servers["claude"]["cooling_until"] is not None
    stored = json.loads(cooldown_file.read_text())["claude"]["until"]
    assert stored <= time.time() + MAX_WAIT_S

    # Restarted with a shorter maximum, the stored hour is read back clamped, and claude answers after it.
    config.write_text(json.dumps({"settings": {"cooldown_file": str(cooldown_file), "max_cooldown_s": 1}}))
    emu.reset()
    async with serve(env, tmp_path, "--config", str(config)) as server:
        snap = await server.ask(prompt="hi", models=["claude", "gpt"], mode="all")
        assert legs(snap)["gpt"]["status"] == "done"

        async def claude_answers() -> bool:
            snap = await server.ask(prompt="hi", models=["claude"], mode="all")
            return bool(snap["status"] == "done")

        await until(claude_answers, every_s=0.2)


@pytest.mark.e2e
async def test_infinity_in_the_config_and_a_damaged_cooldown_file_leave_serve_answering(
        emu: Any, tmp_path: Path) -> None:
    env = server_env(emu, LLMMIXER_MAX_RETRIES="0")
    cooldown_file = tmp_path / "cooldowns.json"
    cooldown_file.write_bytes(b'{"claude": {"until": 1e999, "reason": "x", "consecutive": 0}, "gpt": ')  # cut off
    config = tmp_path / "llmmixer.json"
    config.write_text('{"settings": {"breaker_s": Infinity, "breaker_failures": 1, "max_cooldown_s": 1, '
                      f'"cooldown_file": {json.dumps(str(cooldown_file))}}}}}')
    emu.set_behaviour("anthropic", error={"status": 503})
    async with serve(env, tmp_path, "--config", str(config)) as server:
        assert cooldown_file.with_name("cooldowns.json.damaged").exists()
        first = await server.ask(prompt="hi", models=["claude", "gpt"], mode="all")
        assert legs(first)["claude"]["error"]["kind"] == "unavailable"
        snap = await server.ask(prompt="hi", models=["claude", "gpt", "gemini"], mode="race")
        assert snap["status"] == "done" and legs(snap)["claude"]["status"] == "skipped"
        assert (await server.client.get("/healthz")).status_code == 200
        emu.reset()

        async def claude_answers() -> bool:
            snap = await server.ask(prompt="hi", models=["claude"], mode="all")
            return bool(snap["status"] == "done")

        await until(claude_answers, every_s=0.2)
        assert "settings.breaker_s of infinite s is clamped to 3600 s" in server.stderr()


class _Poisoned(Cooldowns):
    """A cooldown table holding a value the code cannot handle: the kind of bad state that crashed the scheduler."""

    def skip_reason(self, server: str) -> str | None:
        raise OverflowError("timestamp out of range for platform time_t")


async def test_one_runs_crash_ends_that_run_only_and_the_scheduler_keeps_starting_runs(emu: Any) -> None:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    async with Runs(Config(servers=default_servers(inprocess=True), settings=Settings()), open_store("memory")) as runs:
        healthy = runs.mixer.cooldowns
        runs.mixer.cooldowns = _Poisoned()
        crashed = await runs.start_ask("hi", models=["gpt", "gemini"], mode="race")
        assert await runs.wait(crashed, 60)
        snap = await runs.snapshot(crashed)
        assert snap["status"] == "error" and snap["error"]["kind"] == "server"
        assert "see the server log" in snap["error"]["message"]
        assert runs.start_refusal() is None
        runs.mixer.cooldowns = healthy
        fine = await runs.start_ask("hi", models=["gpt"], mode="race")
        assert await runs.wait(fine, 60)
        assert (await runs.snapshot(fine))["status"] == "done"
    assert runs.start_refusal() is not None  # stopped: healthz would say 503
