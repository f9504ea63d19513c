"""Issue 24 item 10: writes under a frozen disk time out into the spool instead of blocking the API.

``llmmixer serve`` keeps its SQLite store on an ext4 file system on a loop device that ``fsfreeze`` freezes: every
write to it blocks in the kernel until the thaw. The disk stays frozen until the test thaws it, so each call below
that answers before the thaw is one the freeze did not block: runs start and finish with their text, ``/healthz``
says 503 naming the hung write, a history read fails fast with 503. After the thaw every run is in the history with
its status and text, and no event was lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import server_env
from fault_support import freezable_disk
from reliability_support import serve, until

from llmmixer.orchestrator import run_record
from llmmixer.orchestrator.stores import SqliteStore

pytestmark = pytest.mark.anyio

REPLY = "one two three four five six"


async def test_a_frozen_disk_blocks_no_api_call_and_loses_nothing(emu: Any, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=20, inter_token_ms=20, tokens=6, reply=REPLY)
    with freezable_disk() as disk:
        db = disk.path / "events.db"
        async with serve(server_env(emu), tmp_path, "--store", f"sqlite:///{db}") as server:
            before = await server.ask(prompt="before the freeze", models=["claude"], mode="all")
            disk.freeze()
            try:
                with anyio.fail_after(120):  # a call blocked by the freeze would wait here until this fails
                    during = [await server.ask(prompt=f"during the freeze {i}", models=["claude"], mode="all")
                              for i in range(3)]

                    async def stall_reported() -> bool:
                        health = await server.client.get("/healthz")
                        return health.status_code == 503 and "has not finished" in health.json()["store"]

                    await until(stall_reported, timeout_s=60)
                    after_stall = await server.ask(prompt="once the stall is known", models=["claude"], mode="all")
                    listing = await server.client.get("/api/runs")
                    assert disk.frozen
            finally:
                disk.thaw()
            assert listing.status_code == 503 and "busy" in listing.json()["error"]["message"]
            during.append(after_stall)
            for snap in during:
                assert snap["status"] == "done" and snap["legs"][0]["text"] == REPLY

            async def all_stored() -> bool:
                health = await server.client.get("/healthz")
                return health.status_code == 200 and "spooled" not in health.json()

            await until(all_stored, timeout_s=60)
            history = (await server.client.get("/api/runs", params={"limit": 10})).json()["runs"]
        store = SqliteStore(db)
        async with store:
            for snap in [before, *during]:
                record = await store.get_run(snap["run_id"])
                events = await store.read_after(None, 10_000, run=snap["run_id"])
                assert record is not None and record["status"] == "done"
                assert run_record.snapshot(snap["run_id"], events)["legs"][0]["text"] == REPLY
            assert not [e for e in await store.read_after(None, 100_000) if e.type == "store.gap"]
    assert {line["run_id"] for line in history} == {snap["run_id"] for snap in [before, *during]}
    assert {line["status"] for line in history} == {"done"}
