"""Issue 24 item 4: the run log survives store outages. A run that finished during the outage reads ``done`` with
its text afterwards, every run started during it is in the history (and its conversation can be continued), and
the run log and the event log agree. Real outages: our own redis-server SIGKILLed, a tmpfs filled up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fault_support import fill, own_redis, tmpfs
from test_store_faults import FAST_BACKOFF, until

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import StoreWriter, open_store

pytestmark = pytest.mark.anyio


class Outage:
    """``down()`` and ``up()`` for one store."""

    def __init__(self, url: str, down: Any, up: Any) -> None:
        self.url, self.down, self.up = url, down, up


@contextlib.contextmanager
def outage(kind: str, tmp_path: Path) -> Iterator[Outage]:
    if kind == "redis":
        with own_redis(tmp_path) as redis:
            yield Outage(f"{redis.url}?stream=runlog", redis.kill, redis.start)
    else:
        with tmpfs("2m") as mount:
            filler: list[Path] = []
            yield Outage(f"sqlite:///{mount}/events.db", lambda: filler.append(fill(mount)),
                         lambda: filler.pop().unlink())


def config() -> Config:
    return Config(servers=default_servers(), settings=Settings())


async def settle(runs: Runs) -> None:
    with anyio.fail_after(60):
        while not await runs.flush():
            await anyio.sleep(0.05)


@pytest.mark.parametrize("kind", ["redis", "sqlite-full-disk"])
async def test_runs_finished_or_started_during_an_outage_are_in_the_history_with_their_text(
        kind: str, emu: Any, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=100, tokens=10, reply="one two three four five six")
    with outage(kind, tmp_path) as store_fault:
        store = open_store(store_fault.url)
        async with Runs(config(), store, writer=StoreWriter(store, backoff=FAST_BACKOFF)) as runs:
            spanning = await runs.start_ask("before the outage", models="claude", mode="all")
            await settle(runs)
            store_fault.down()
            during = [await runs.start_ask(f"during the outage {i}", models="claude", mode="all") for i in range(3)]
            for run_id in (spanning, *during):
                assert await runs.wait(run_id, 60)
            await until(lambda: not store.health.ok)
            store_fault.up()
            await settle(runs)
            texts = {run_id: (await runs.snapshot(run_id))["legs"][0]["text"] for run_id in (spanning, *during)}

        # A restart: everything comes from the store now.
        store = open_store(store_fault.url)
        async with Runs(config(), store) as runs:
            listed = {line["run_id"]: line for line in await runs.list_runs(limit=50)}
            for run_id in (spanning, *during):
                assert listed[run_id]["status"] == "done", listed.get(run_id)
                snap = await runs.snapshot(run_id)
                assert snap["status"] == "done" and snap["legs"][0]["text"] == texts[run_id]
                events = await store.read_after(None, 1000, run=run_id)
                assert events[-1].type == "run.done" and events[-1].data["status"] == "done"
            conversation = listed[during[0]]["conversation_id"]
            follow_up = await runs.start_ask("and then?", models="claude", mode="all",
                                             conversation_id=conversation)
            assert await runs.wait(follow_up, 60)
            assert (await runs.snapshot(follow_up))["status"] == "done"
