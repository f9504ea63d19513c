"""The HTTP API layer on a real port, over a small stand-in for the orchestrator's run service: routes call the
service as documented, every bad input is a clear 4xx JSON error, errors map to fitting statuses, and the front
door (body cap, Origin, Host, token) holds. The server stays up through all of it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from sse_support import opened_store

from llmmixer.orchestrator.web.__main__ import NoRuns
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.orchestrator.requests import AgentRequest, CommandRequest, RunRequest
from llmmixer.orchestrator.web.security import COOKIE_NAME, BindRefused
from llmmixer.servers.core.errors import (
    AuthError,
    InvalidInputError,
    LLMMixerError,
    NotFoundError,
    RateLimitError,
    UnavailableError,
)

pytestmark = pytest.mark.anyio

SECRET = "sk-ant-not-a-real-key-0000"


class FakeRuns:
    """Records calls; holds runs as snapshots; ``fail_with`` makes the next start raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.finished: dict[str, anyio.Event] = {}
        self.fail_with: BaseException | None = None
        self.waiting = anyio.Event()  # set when a request waits on a run

    def _start(self, kind: str, **arguments: Any) -> str:
        self.calls.append((kind, arguments))
        if self.fail_with is not None:
            raise self.fail_with
        run_id = f"run{len(self.calls)}"
        self.snapshots[run_id] = {"run_id": run_id, "kind": kind, "status": "running", "mode": arguments.get("mode")}
        self.finished[run_id] = anyio.Event()
        return run_id

    async def start(self, request: RunRequest) -> str:
        self.request = request
        if isinstance(request, CommandRequest):
            return self._start("command", command=request.command, cwd=request.cwd, timeout_s=request.timeout_s)
        if isinstance(request, AgentRequest):
            return self._start("agent", task=request.task, agents=request.agents, check=request.check)
        return self._start("ask", prompt=request.prompt, models=request.models, mode=request.mode,
                           system=request.system)

    def finish(self, run_id: str, **result: Any) -> None:
        self.snapshots[run_id] = {**self.snapshots[run_id], "status": "done", **result}
        self.finished[run_id].set()

    def check_id(self, run_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
            raise InvalidInputError("malformed run id: expected the id returned when the run started")
        return run_id

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.snapshots:
            raise NotFoundError(f"no run {run_id!r}")
        return dict(self.snapshots[run_id])

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        self.waiting.set()
        with anyio.move_on_after(timeout_s):
            await self.finished[run_id].wait()
        return self.finished[run_id].is_set()

    async def cancel(self, run_id: str) -> dict[str, Any]:
        snapshot = await self.snapshot(run_id)
        self.calls.append(("cancel", {"run_id": run_id}))
        self.snapshots[run_id] = {**snapshot, "status": "cancelled"}
        return self.snapshots[run_id]

    async def servers(self) -> list[dict[str, Any]]:
        return [{"name": "claude", "transport": "stdio", "status": "ok"}, {"name": "pty", "status": "ok"}]

    def server_statuses(self) -> list[dict[str, Any]]:
        return [{"name": "claude", "transport": "stdio", "status": "starting"}]

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        newest_first = list(reversed(self.snapshots.values()))
        return [{"run_id": s["run_id"], "status": s["status"]} for s in newest_first[offset:offset + limit]]

    async def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        return
        yield


@contextlib.asynccontextmanager
async def api(runs: Any = None, **options: Any) -> AsyncIterator[tuple[httpx2.AsyncClient, Any]]:
    runs = runs if runs is not None else FakeRuns()
    async with opened_store("memory") as store:
        app = create_app(runs, store, **options)
        async with running(app) as url, httpx2.AsyncClient(base_url=url, timeout=20) as client:
            with anyio.fail_after(30):
                yield client, runs


def assert_error(response: httpx2.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()["error"]
    assert body["kind"] == kind and body["message"]
    return body


async def assert_alive(client: httpx2.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


async def test_routes_call_the_run_service() -> None:
    async with api() as (client, runs):
        started = await client.post("/api/runs", json={"prompt": "Say hi", "models": "claude, gpt",
                                                       "mode": "race", "system": "Be brief"})
        assert started.status_code == 202 and started.json() == {"run_id": "run1"}
        assert runs.calls[-1] == ("ask", {"prompt": "Say hi", "models": ["claude", "gpt"], "mode": "race",
                                          "system": "Be brief"})
        default = await client.post("/api/runs", json={"prompt": "defaults"})
        assert runs.calls[-1] == ("ask", {"prompt": "defaults", "models": None, "mode": None, "system": None})
        command = await client.post("/api/commands", json={"command": "ls --color=always", "timeout_s": 5})
        assert command.status_code == 202
        assert runs.calls[-1] == ("command", {"command": "ls --color=always", "cwd": None, "timeout_s": 5.0})

        snapshot = await client.get("/api/runs/run1")
        assert snapshot.status_code == 200 and snapshot.json()["status"] == "running"
        cancelled = await client.post("/api/runs/run1/cancel", headers={"X-LLMMixer": "1"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert runs.calls[-1] == ("cancel", {"run_id": "run1"})

        servers = await client.get("/api/servers")
        assert [s["name"] for s in servers.json()["servers"]] == ["claude", "pty"]
        # each status carries what the server's manifest says about it, names of variables and never values
        claude, pty = servers.json()["servers"]
        assert (claude["role"], claude["vendor"], claude["key_var"]) == ("model", "anthropic", "ANTHROPIC_API_KEY")
        assert (pty["role"], pty["key_var"]) == ("runner", None)
        meta = (await client.get("/api/meta")).json()
        assert meta["default_mode"] == meta["modes"][0]["name"] and "run.done" in meta["event_types"]
        history = (await client.get("/api/runs", params={"limit": "2"})).json()["runs"]
        assert [h["run_id"] for h in history] == [command.json()["run_id"], default.json()["run_id"]]
        health = (await client.get("/healthz")).json()
        assert health == {"ok": True, "store": "memory", "streams": 0}


async def test_synthesize_judge_reasoning_and_images_reach_the_run_service() -> None:
    async with api() as (client, runs):
        started = await client.post("/api/runs", json={
            "prompt": "describe", "mode": "synthesize", "aggregator": "gpt", "rounds": 2, "min_answers": 2,
            "deadline_s": 30, "reasoning": "low", "images": [{"url": "https://example.com/a.png"},
                                                             {"data": "iVBORw0KGgo=", "media_type": "image/png"}]})
        assert started.status_code == 202, started.text
        assert runs.calls[-1][1]["mode"] == "synthesize"
        request = runs.request
        assert (request.aggregator, request.rounds, request.min_answers, request.deadline_s) == ("gpt", 2, 2, 30)
        assert request.reasoning == "low"
        assert [image.model_dump(exclude_none=True) for image in request.images] == [
            {"url": "https://example.com/a.png"}, {"data": "iVBORw0KGgo=", "media_type": "image/png"}]
        assert (await client.post("/api/runs", json={"prompt": "x", "mode": "judge"})).status_code == 202
        # a web client may not name files on the server's disk
        refused = await client.post("/api/runs", json={"prompt": "x", "images": [{"path": "/etc/passwd"}]})
        assert_error(refused, 400, "invalid_input")
        assert_error(await client.post("/api/runs", json={"prompt": "x", "reasoning": "max"}), 400, "invalid_input")


async def test_wait_returns_the_final_result_when_the_run_ends() -> None:
    async with api() as (client, runs):
        run_id = (await client.post("/api/runs", json={"prompt": "hi"})).json()["run_id"]
        async with anyio.create_task_group() as tg:
            got = {}

            async def get() -> None:
                got["result"] = (await client.get(f"/api/runs/{run_id}", params={"wait": "20"})).json()

            tg.start_soon(get)
            await runs.waiting.wait()  # the request is waiting on the run
            runs.finish(run_id, winner="claude", total_cost_usd=0.001)
        assert got["result"]["status"] == "done" and got["result"]["winner"] == "claude"
        quick = await client.get(f"/api/runs/{run_id}", params={"wait": "0"})
        assert quick.json()["status"] == "done"
        for bad in ("soon", "-1", "nan", "inf"):
            assert_error(await client.get(f"/api/runs/{run_id}", params={"wait": bad}), 400, "invalid_input")


async def test_malformed_json_and_wrong_fields_are_400() -> None:
    async with api() as (client, runs):
        bad = await client.post("/api/runs", content=b'{"prompt": "hi",', headers={"content-type": "application/json"})
        assert "not valid JSON" in assert_error(bad, 400, "invalid_input")["message"]
        assert_error(await client.post("/api/runs", content=b"\xff\xfe", headers={"content-type": "application/json"}),
                     400, "invalid_input")
        assert_error(await client.post("/api/runs", json=["prompt"]), 400, "invalid_input")
        wrong = await client.post("/api/runs", json={"prompt": 42, "mode": "sprint", "colour": "red"})
        problems = assert_error(wrong, 400, "invalid_input")["details"]["problems"]
        assert {p["field"] for p in problems} == {"prompt", "mode", "colour"}
        assert_error(await client.post("/api/runs", json={"prompt": ""}), 400, "invalid_input")
        assert_error(await client.post("/api/commands", json={"command": ""}), 400, "invalid_input")
        assert_error(await client.post("/api/commands", json={"command": "ls", "timeout_s": -1}), 400,
                     "invalid_input")
        assert runs.calls == []  # nothing reached the service
        await assert_alive(client)


async def test_unknown_and_malformed_run_ids_and_paths() -> None:
    async with api() as (client, _):
        assert_error(await client.get("/api/runs/does-not-exist"), 404, "not_found")
        assert_error(await client.post("/api/runs/does-not-exist/cancel", headers={"X-LLMMixer": "1"}), 404,
                     "not_found")
        assert_error(await client.get("/api/runs/bad%20id!"), 400, "invalid_input")
        assert_error(await client.get("/api/nothing-here"), 404, "not_found")
        assert_error(await client.delete("/api/runs"), 405, "invalid_input")
        assert_error(await client.get("/api/runs", params={"limit": "0"}), 400, "invalid_input")
        await assert_alive(client)


@pytest.mark.parametrize(("error", "status"), [
    (RateLimitError("slow down", vendor="anthropic", status=429, retry_after_s=3.0), 429),
    (AuthError("set ANTHROPIC_API_KEY"), 401),
    (UnavailableError("no MCP server for pty"), 503),
    (InvalidInputError("unknown model server(s) llama"), 400),
])
async def test_service_errors_keep_their_kind_and_get_a_fitting_status(error: LLMMixerError, status: int) -> None:
    async with api() as (client, runs):
        runs.fail_with = error
        body = assert_error(await client.post("/api/runs", json={"prompt": "hi"}), status, error.kind.value)
        assert body["message"] == error.message and body["retryable"] == error.retryable
        if error.retry_after_s is not None:
            assert body["retry_after_s"] == error.retry_after_s and body["vendor"] == "anthropic"


async def test_a_crash_is_500_without_details() -> None:
    async with api() as (client, runs):
        runs.fail_with = RuntimeError(f"config had {SECRET}")
        response = await client.post("/api/runs", json={"prompt": "hi"})
        body = assert_error(response, 500, "server")
        assert SECRET not in response.text and "server log" in body["message"]
        await assert_alive(client)


async def test_ten_megabyte_body_is_413_declared_or_chunked() -> None:
    big = b'{"prompt": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]

    async with api() as (client, runs):
        declared = await client.post("/api/runs", content=big, headers={"content-type": "application/json"})
        assert_error(declared, 413, "invalid_input")
        streamed = await client.post("/api/runs", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in streamed.request.headers  # really chunked: counted while read
        assert_error(streamed, 413, "invalid_input")
        assert runs.calls == []
        await assert_alive(client)


async def test_foreign_origin_is_403_and_rebinding_host_is_421() -> None:
    async with api() as (client, runs):
        foreign = await client.post("/api/runs", json={"prompt": "hi"}, headers={"Origin": "https://evil.example"})
        assert_error(foreign, 403, "permission")
        assert_error(await client.get("/events", headers={"Origin": "http://localhost:1"}), 403, "permission")
        assert_error(await client.get("/api/servers", headers={"Host": "evil.example"}), 421, "permission")
        own = await client.post("/api/runs", json={"prompt": "hi"},
                                headers={"Origin": str(client.base_url).rstrip("/")})
        assert own.status_code == 202
        assert len(runs.calls) == 1
        await assert_alive(client)


def test_non_loopback_bind_without_token_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmmixer.orchestrator.stores import open_store

    with pytest.raises(BindRefused, match="LLMMIXER_TOKEN"):
        create_app(FakeRuns(), open_store("memory"), host="0.0.0.0")
    monkeypatch.setenv("LLMMIXER_TOKEN", "from-the-environment")
    assert create_app(FakeRuns(), open_store("memory"), host="0.0.0.0").state.policy.token == "from-the-environment"


async def test_non_loopback_bind_requires_the_token_on_api_and_sse() -> None:
    # The policy is the 0.0.0.0 one; the socket itself stays on loopback so the test exposes nothing.
    async with api(host="0.0.0.0", token="s3cret-token") as (client, _):
        assert_error(await client.get("/api/servers"), 401, "auth")
        assert_error(await client.get("/events"), 401, "auth")
        assert_error(await client.post("/api/runs", json={"prompt": "hi"}), 401, "auth")
        assert_error(await client.get("/api/servers", headers={"Authorization": "Bearer wrong"}), 401, "auth")
        bearer = await client.get("/api/servers", headers={"Authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200
        # The dashboard shell holds nothing secret, so a browser can load it and be asked for the token.
        assert (await client.get("/")).status_code == 200
        assert_error(await client.get("/", params={"token": "wrong"}), 401, "auth")
        visit = await client.get("/", params={"token": "s3cret-token"})
        assert visit.status_code == 303 and visit.headers["location"] == "/"
        cookie = visit.headers["set-cookie"]
        assert f"{COOKIE_NAME}=s3cret-token" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        with_cookie = await client.get("/api/servers", headers={"Cookie": f"{COOKIE_NAME}=s3cret-token"})
        assert with_cookie.status_code == 200
        await assert_alive(client)


async def test_dashboard_is_served_without_a_build_step() -> None:
    async with api() as (client, _):
        index = await client.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        assert '<script src="/static/app.js"' in index.text
        script = await client.get("/static/app.js")
        assert script.status_code == 200 and "EventSource" in script.text
        assert (await client.get("/static/ansi.js")).status_code == 200
        assert (await client.get("/static/app.css")).status_code == 200
        for module in ("spend.js", "pickers.js"):
            assert (await client.get(f"/static/{module}")).status_code == 200
        chart = await client.get("/static/vendor/chart.umd.min.js")  # vendored: the page needs no CDN
        assert chart.status_code == 200 and "Chart.js v4" in chart.text[:200]
        assert_error(await client.get("/api/models", params={"cached": "yes"}), 400, "invalid_input")


async def test_a_store_only_server_refuses_runs_as_unavailable() -> None:
    async with api(NoRuns()) as (client, _):
        assert_error(await client.post("/api/runs", json={"prompt": "hi"}), 503, "unavailable")
        assert_error(await client.get("/api/runs/abc"), 503, "unavailable")
        assert (await client.get("/api/servers")).json() == {"servers": []}
        assert (await client.get("/api/runs")).json()["runs"] == []
