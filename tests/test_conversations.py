"""Conversations through real parts: the CLI as a subprocess, the adapters over MCP, the official SDKs, the
emulators, and the run log in SQLite (plus the memory and Redis stores at the protocol level)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import server_env
from test_cli import llmmixer

from llmmixer.orchestrator import history
from llmmixer.orchestrator.results import AskResult, LegResult
from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import NotFoundError


def _messages_of(record: dict[str, Any]) -> Any:
    return record["body"].get("input") or record["body"].get("messages")


@pytest.mark.e2e
def test_a_thread_started_on_claude_continues_on_gpt_with_c(emu, tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'logs.db'}"
    env = server_env(emu)
    emu.set_behaviour("anthropic", reply="Paris is the capital of France.")
    first = llmmixer("ask", "What is the capital of France?", "--models", "claude", "--json", "--store", store,
                     env=env)
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    assert started["conversation_id"]

    emu.set_behaviour("openai", reply="About 2.1 million people.")
    second = llmmixer("ask", "How many people live there?", "--models", "gpt", "-c", "--json", "--store", store,
                      env=env)
    assert second.returncode == 0, second.stderr
    continued = json.loads(second.stdout)
    assert continued["conversation_id"] == started["conversation_id"]

    # What GPT received: the first exchange (Claude's answer as the assistant turn), then the new question.
    wire = json.dumps(_messages_of(emu.requests("openai")[-1]), ensure_ascii=False)
    order = [wire.find("What is the capital of France?"), wire.find("Paris is the capital of France."),
             wire.find("How many people live there?")]
    assert -1 not in order and order == sorted(order), wire

    # --cid picks a conversation explicitly; a third model sees both earlier exchanges.
    emu.set_behaviour("gemini", reply="Yes.")
    third = llmmixer("ask", "Is it big?", "--models", "gemini", "--cid", started["conversation_id"], "--json",
                     "--store", store, env=env)
    assert third.returncode == 0, third.stderr
    contents = json.dumps(emu.requests("gemini")[-1]["body"]["contents"], ensure_ascii=False)
    assert "Paris is the capital" in contents and "2.1 million" in contents

    unknown = llmmixer("ask", "hi", "--cid", "feedfacefeedface", "--store", store, env=env)
    assert unknown.returncode != 0 and "no conversation" in unknown.stderr


@pytest.mark.anyio
async def test_in_a_race_the_winners_answer_is_the_kept_turn(emu, tmp_path: Path):
    emu.set_behaviour("anthropic", reply="slow claude answer", ttft_ms=900)
    emu.set_behaviour("openai", reply="fast gpt answer", ttft_ms=10)
    config = Config(servers=default_servers(inprocess=True), settings=Settings())
    async with Runs(config, open_store(f"sqlite:///{tmp_path / 'r.db'}")) as runs:
        await runs.pool.prepare(["claude", "gpt"])
        run_id = await runs.start_ask("first question", models="claude,gpt", mode="race")
        assert await runs.wait(run_id, 60)
        first = await runs.snapshot(run_id)
        assert first["winner"] == "gpt"
        cid = first["conversation_id"]
        emu.reset()
        follow = await runs.start_ask("second question", models="claude", conversation_id=cid)
        assert await runs.wait(follow, 60)
        with pytest.raises(NotFoundError):
            await runs.start_ask("x", conversation_id="0000000000000000")
    sent = emu.requests("anthropic")[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert json.dumps(sent[1]).count("fast gpt answer") == 1 and "slow claude" not in json.dumps(sent)


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["memory", "sqlite", "redis"])
async def test_every_store_keeps_run_records_and_conversations(url: str, tmp_path: Path):
    if url == "sqlite":
        url = f"sqlite:///{tmp_path / 'e.db'}"
    if url == "redis":
        pytest.importorskip("redis")
        url = f"redis://127.0.0.1:6379/0?stream=convo:test:{tmp_path.name}"
    store = open_store(url)
    try:
        await store.open()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"store unavailable: {exc}")
    try:
        for i in range(5):
            record = history.new_record(f"run{i}", "ask", conversation_id="c1" if i % 2 == 0 else "c2",
                                        prompt=f"question {i}", models=["claude"], mode="race")
            await store.put_run(record)
            result = AskResult(mode="race", winner="claude",
                               legs=[LegResult(source="claude", status="won", text=f"answer {i}")])
            await store.put_run(history.finish_record(record, "done", result, result.wire()))
        assert [r["run_id"] for r in await store.list_runs(limit=2)] == ["run4", "run3"]
        assert [r["run_id"] for r in await store.list_runs(limit=2, offset=2)] == ["run2", "run1"]
        assert [r["run_id"] for r in await store.list_runs(query="QUESTION 3")] == ["run3"]
        assert [r["run_id"] for r in await store.list_runs(query="answer 1")] == ["run1"]
        assert [r["run_id"] for r in await store.list_runs(conversation_id="c2")] == ["run3", "run1"]
        assert await store.latest_conversation() == "c1"
        thread = history.messages_for(await store.conversation_runs("c1"))
        assert [m["content"] for m in thread] == ["question 0", "answer 0", "question 2", "answer 2",
                                                  "question 4", "answer 4"]
        assert (await store.get_run("run2"))["answer"] == "answer 2"
        assert await store.get_run("nope") is None
    finally:
        if url.startswith("redis"):
            keys = [f"{store.stream}:runs", f"{store.stream}:runs:order", f"{store.stream}:runs:seq"]
            await store.client.delete(*keys)
        await store.close()


@pytest.mark.anyio
async def test_the_memory_run_log_is_bounded():
    store = open_store("memory")
    store.max_runs = 10
    for i in range(25):
        await store.put_run(history.new_record(f"run{i}", "ask", prompt="p"))
    kept = await store.list_runs(limit=100)
    assert len(kept) == 10 and kept[0]["run_id"] == "run24" and kept[-1]["run_id"] == "run15"
