"""Issue 12 item 3 through the orchestrator: finished runs leave memory and are read back from the store, and a
command's output is stored once (its ``pty.output`` events), not three times. Real adapter servers and the real
PTY runner, in process (the inprocess transport: the same MCP messages over in-memory streams)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator import runs as runs_module
from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import SqliteStore, open_store

pytestmark = pytest.mark.anyio


def config() -> Config:
    return Config(servers=default_servers(inprocess=True), settings=Settings())


async def test_finished_runs_leave_memory_and_read_back_whole_from_the_store(emu: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(runs_module, "CACHE_RUNS", 2)
    emu.set_behaviour("anthropic", reply="All of this text streams, and comes back from the store.", tokens=9)
    async with Runs(config(), open_store("memory")) as runs:
        ids = []
        with anyio.fail_after(120):
            for _ in range(6):
                run_id = await runs.start_ask("hello", models="claude", mode="race")
                assert await runs.wait(run_id, 60)
                ids.append(run_id)
        assert len(runs._runs) == 2 and set(runs._runs) == set(ids[-2:])  # only the newest stay in memory
        for run_id in ids:
            result = await runs.snapshot(run_id)
            assert result["status"] == "done" and "incomplete" not in result
            assert result["legs"][0]["text"] == "All of this text streams, and comes back from the store."
            assert result["prompt"] == "hello"
        assert [r["run_id"] for r in await runs.list_runs(limit=10)][:6] == ids[::-1]
        stored = await runs.store.read_after(None, 1000, run=ids[0])
        leg_done = [e for e in stored if e.type == "leg.done"]
        assert leg_done and all("text" not in e.data and e.data["text_chars"] > 0 for e in leg_done)
        run_done = next(e for e in stored if e.type == "run.done")
        assert all("text" not in leg and leg["text_chars"] > 0 for leg in run_done.data["legs"])


async def test_a_commands_output_is_stored_once(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(runs_module, "CACHE_RUNS", 0)  # the snapshot below comes from the store
    monkeypatch.chdir(tmp_path)  # the runner's roots: where it starts
    db = tmp_path / "events.db"
    async with Runs(config(), SqliteStore(db)) as runs:
        with anyio.fail_after(120):
            run_id = await runs.start_command("seq 1 40000", cwd=str(tmp_path))
            assert await runs.wait(run_id, 100)
            assert await runs.flush()
        assert run_id not in runs._runs
        result = await runs.snapshot(run_id)
        events = await runs.store.read_after(None, 100_000, run=run_id)
        record = await runs.store.get_run(run_id)
    assert result["status"] == "done" and result["exit_code"] == 0 and "incomplete" not in result
    streamed = "".join(e.data["text"] for e in events if e.type == "pty.output")
    assert "39999" in result["output"] and streamed.endswith(result["output"])
    output_bytes = len(result["output"])
    stored_chars = sum(_text_chars(e.data) for e in events)
    record_bytes = len(json.dumps(record))
    # Once: the events' text is the output plus a little per chunk (counted as characters, not as JSON, whose
    # escapes of a terminal's \r\n would add a third); the run record holds none of it.
    assert output_bytes < stored_chars < 1.3 * output_bytes
    assert record_bytes < 2_000 and record is not None and record["result"]["output_chars"] == output_bytes


def _text_chars(value: Any) -> int:
    """Characters of every string (keys included) inside ``value``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + _text_chars(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_text_chars(v) for v in value)
    return len(str(value))
