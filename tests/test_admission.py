"""Admission control (issue 12, item 4): each server has a bounded queue (``maxQueue``, with a default); past it
a run is refused at once with ``rate_limit`` and a ``retry_after_s`` (HTTP 429 with ``Retry-After``), and a leg
waiting for a slot shows ``queued``. Through the real stack: HTTP API -> Runs -> MCP over stdio -> the Claude
adapter -> the Anthropic SDK -> the emulator, which holds every stream open so the slots stay taken.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import httpx2
import pytest

from llmmixer.orchestrator.config import DEFAULT_MAX_QUEUE, Config, ServerSpec, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.servers.core.errors import InvalidInputError, RateLimitError

pytestmark = pytest.mark.anyio

CONCURRENCY, QUEUE = 2, 3


def busy_config() -> Config:
    claude = default_servers(inprocess=True)["claude"]
    claude.max_concurrency, claude.max_queue = CONCURRENCY, QUEUE
    return Config(servers={"claude": claude}, settings=Settings(models=["claude"], mode="race"))


async def legs_of(client: httpx2.AsyncClient, run_id: str) -> list[str]:
    snapshot = (await client.get(f"/api/runs/{run_id}")).json()
    return [leg["status"] for leg in snapshot.get("legs", [])]


async def until(condition: Any) -> None:
    with anyio.fail_after(60):
        while not await condition():
            await anyio.sleep(0.05)


async def test_a_thousand_concurrent_runs_past_the_queue_are_429_and_queued_legs_say_so(emu) -> None:
    emu.set_behaviour("anthropic", hang=True)  # every stream stays open until its client hangs up
    async with Runs(busy_config(), open_store("memory")) as runs:
        app = create_app(runs, runs.store)
        async with running(app) as url, httpx2.AsyncClient(base_url=url, timeout=120) as client:
            responses: list[httpx2.Response] = []

            async def post(sender: httpx2.AsyncClient) -> None:
                responses.append(await sender.post("/api/runs", json={"prompt": "hold on"}))

            # A thousand connections at once, from ten clients of a hundred each: one client's pool of a thousand
            # spends more time matching requests to its connections than the server spends answering them.
            limits = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
            async with contextlib.AsyncExitStack() as stack:
                senders = [await stack.enter_async_context(httpx2.AsyncClient(base_url=url, timeout=120, limits=limits))
                           for _ in range(10)]
                with anyio.fail_after(240):
                    async with anyio.create_task_group() as tg:
                        for i in range(1000):
                            tg.start_soon(post, senders[i % len(senders)])

            accepted = [r.json()["run_id"] for r in responses if r.status_code == 202]
            refused = [r for r in responses if r.status_code == 429]
            assert len(accepted) == CONCURRENCY + QUEUE and len(refused) == 1000 - len(accepted)
            for response in refused[:50]:
                error = response.json()["error"]
                assert error["kind"] == "rate_limit" and error["retryable"] is True
                assert error["retry_after_s"] >= 1 and int(response.headers["retry-after"]) >= 1
                assert "maxQueue" in error["message"]

            # Two legs hold the slots; the other three wait for one, and say so.
            async def settled() -> bool:
                states = sorted([s for run_id in accepted for s in await legs_of(client, run_id)])
                return states == ["queued"] * QUEUE + ["running"] * CONCURRENCY

            await until(settled)
            await runs.flush()
            queued_events = [e for e in await runs.store.read_after(None, 10_000) if e.type == "leg.queued"]
            assert len(queued_events) == QUEUE
            status = next(s for s in (await client.get("/api/servers")).json()["servers"] if s["name"] == "claude")
            assert (status["active"], status["queued"], status["max_queue"]) == (CONCURRENCY, QUEUE, QUEUE)

            # Cancelling a running leg frees its slot: a queued leg starts, and one new run is admitted again.
            states = {run_id: await legs_of(client, run_id) for run_id in accepted}
            running_run = next(run_id for run_id, legs in states.items() if legs == ["running"])
            cancelled = await client.post(f"/api/runs/{running_run}/cancel", headers={"X-LLMMixer": "1"})
            assert cancelled.json()["status"] == "cancelled"

            async def one_left_waiting() -> bool:
                states = [s for run_id in accepted for s in await legs_of(client, run_id)]
                return states.count("running") == CONCURRENCY and states.count("queued") == QUEUE - 1

            await until(one_left_waiting)
            again = await client.post("/api/runs", json={"prompt": "one more"})
            assert again.status_code == 202
            assert (await client.post("/api/runs", json={"prompt": "too many"})).status_code == 429
            # A queued leg cancelled before it ever reached the vendor is charged nothing.
            states = {run_id: await legs_of(client, run_id) for run_id in accepted}
            queued_run = next(run_id for run_id, legs in states.items() if legs == ["queued"])
            final = (await client.post(f"/api/runs/{queued_run}/cancel", headers={"X-LLMMixer": "1"})).json()
            assert final["legs"][0]["status"] == "cancelled"
            assert final["legs"][0]["usage"]["input_tokens"] == 0


async def test_the_mcp_face_and_commands_are_admitted_the_same_way(emu) -> None:
    emu.set_behaviour("anthropic", hang=True)
    async with Runs(busy_config(), open_store("memory")) as runs:
        for _ in range(CONCURRENCY + QUEUE):
            await runs.start_ask("hold on")
        with pytest.raises(RateLimitError) as refused:
            await runs.start_ask("one too many")
        assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1
        with pytest.raises(InvalidInputError):  # no pty server configured: said before anything is queued
            await runs.start_command("true")


def test_max_queue_has_a_default_and_is_validated() -> None:
    assert default_servers()["gpt"].max_queue == DEFAULT_MAX_QUEUE > 0
    spec = ServerSpec.from_json("gpt", {"command": "llmmixer-gpt", "maxQueue": 0})
    assert spec.max_queue == 0
    for bad in (-1, "10", True, 2.5):
        with pytest.raises(InvalidInputError, match="maxQueue"):
            ServerSpec.from_json("gpt", {"command": "llmmixer-gpt", "maxQueue": bad})
