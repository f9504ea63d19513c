"""The race view of ``llmmixer mcp`` (MCP Apps, ``ui://llmmixer/race``), in a real host bridge.

Chromium plays the host: a page loads the view in a sandboxed iframe and connects it with the official host-side
bridge (``AppBridge`` of ``@modelcontextprotocol/ext-apps``, from ``.ci/node``). The page relays the view's MCP
requests to this process, which is the host's MCP client: the Python SDK's ``Client`` (declaring the MCP Apps
extension) talking to a real ``llmmixer mcp`` child over stdio, whose adapters stream from the emulators.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.extension import ClientExtension
from mcp.client.stdio import stdio_client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import JSONRPCRequest
from test_dashboard import CHROMIUM, browser  # noqa: F401 - the fixture
from test_mcp_server import TOOLS, all_ended, orchestrator, wait_for_streams

from llmmixer.orchestrator.mcp_app import RACE_URI
from llmmixer.servers.emulators.server import EmulatorServer

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / ".ci" / "node" / "node_modules"
EXT_APPS = NODE_MODULES / "@modelcontextprotocol" / "ext-apps"
HOST_PAGE = Path(__file__).with_name("apps_host.html")
IMG = ROOT / "docs" / "img"
ORIGIN = "http://host.test"
VENDOR = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}

pytestmark = pytest.mark.anyio


class AppsHost(ClientExtension):
    """What a host that renders MCP Apps declares."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


@asynccontextmanager
async def watched(params: StdioServerParameters, calls: dict[str, Any]) -> AsyncIterator[Any]:
    """The stdio transport, noting each ``tools/call`` id by tool name: a host knows the id of its own call (it
    gives it to the view as ``hostContext.toolInfo.id``); the SDK's Client does not say it."""
    async with stdio_client(params) as (read, write):
        send, receive = anyio.create_memory_object_stream[SessionMessage](16)

        async def pump() -> None:
            async with receive:
                async for item in receive:
                    message = item.message
                    if isinstance(message, JSONRPCRequest) and message.method == "tools/call":
                        calls[(message.params or {}).get("name", "")] = message.id
                    await write.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            yield read, send
            tg.cancel_scope.cancel()


def wire(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def without_ui(tool: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in tool.get("_meta", {}).items() if k != "ui"}
    return {k: v for k, v in tool.items() if k != "_meta"} | ({"_meta": meta} if meta else {})


# ---------------------------------------------------------------------------------------------------------------


async def test_a_plain_host_sees_the_tools_it_always_saw_and_an_apps_host_gets_the_view(emu, tmp_path):
    with anyio.fail_after(60):
        async with Client(orchestrator(emu, tmp_path)) as plain:
            plain_tools = (await plain.list_tools()).tools
        async with Client(orchestrator(emu, tmp_path), extensions=[AppsHost()]) as apps:
            app_tools = (await apps.list_tools()).tools
            resource = (await apps.read_resource(RACE_URI)).contents[0]
            listed = (await apps.list_resources()).resources
    # Without MCP Apps: the same five tools as ever, with no _meta.ui (their cost is the host's on every turn).
    assert {t.name for t in plain_tools} == TOOLS
    assert all("ui" not in (tool.meta or {}) for tool in plain_tools)
    # With it: ask and agent point at the view, and race_events is there, which the host keeps from its model
    # (visibility app); apart from that _meta, the tools are the same.
    by_name = {t.name: t for t in app_tools}
    assert set(by_name) == TOOLS | {"race_events"}
    assert by_name["race_events"].meta == {"ui": {"resourceUri": RACE_URI, "visibility": ["app"]}}
    for name in TOOLS:
        assert (by_name[name].meta or {}).get("ui") == ({"resourceUri": RACE_URI} if name in ("ask", "agent")
                                                        else None), name
    assert [wire(t) for t in plain_tools] == [without_ui(wire(by_name[t.name])) for t in plain_tools]
    assert [r.uri for r in listed] == [RACE_URI] and listed[0].mime_type == APP_MIME_TYPE
    assert resource.mime_type == APP_MIME_TYPE
    html = resource.text
    assert html.startswith("<!doctype html>") and "/*inline:" not in html and "<script src" not in html
    assert "LLMMixerRun" in html and "race_events" in html  # the dashboard's run model, and the view's feed


async def test_race_events_read_a_run_by_its_call_and_a_plain_result_is_unchanged(emu, tmp_path):
    calls: dict[str, Any] = {}
    with anyio.fail_after(120):
        async with Client(watched(orchestrator(emu, tmp_path), calls), extensions=[AppsHost()]) as client:
            result = await client.call_tool("ask", {"prompt": "hi", "mode": "all"})
            job = result.structured_content
            assert job is not None and job["status"] == "done"
            out = (await client.call_tool("race_events", {"call": str(calls["ask"]), "wait_s": 5})).structured_content
    assert out is not None and out["job_id"] == job["job_id"]
    types = [e["type"] for e in out["events"]]
    assert types[0] == "run.started" and types[-1] == "run.done" and "delta" in types
    streamed = {}
    for event in out["events"]:
        if event["type"] == "delta":
            streamed[event["source"]] = streamed.get(event["source"], "") + event["data"]["text"]
    assert streamed == {leg["source"]: leg["text"] for leg in job["legs"]}


# ---------------------------------------------------------------------------------------------------------------
# In Chromium, through the official host bridge


def serve_files(route: Any) -> Any:
    path = route.request.url.removeprefix(ORIGIN)
    if path.startswith("/nm/"):
        file = NODE_MODULES / path.removeprefix("/nm/")
    else:
        file = HOST_PAGE
    if not file.is_file():
        return route.fulfill(status=404, body="")
    kind = "text/html" if file.suffix == ".html" else "text/javascript"
    return route.fulfill(status=200, body=file.read_bytes(), headers={"content-type": kind})


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}")
@pytest.mark.skipif(not (EXT_APPS / "package.json").exists(),
                    reason="needs @modelcontextprotocol/ext-apps under .ci/node (see .ci/run)")
async def test_the_view_renders_a_live_race_in_the_host_and_its_cancel_stops_it(emu: EmulatorServer, tmp_path,
                                                                                 browser):  # noqa: F811
    replies = {"anthropic": "Claude streams steadily into the race view. " * 6,
               "openai": "GPT streams its answer alongside. " * 6,
               "gemini": "Gemini streams as well, then is cancelled. " * 6}
    for vendor, reply in replies.items():  # about 20 s each: only the view's Cancel ends them within the test
        emu.set_behaviour(vendor, ttft_ms=100, inter_token_ms=150, tokens=len(reply) // 2, reply=reply)
    calls: dict[str, Any] = {}
    async with Client(watched(orchestrator(emu, tmp_path), calls), extensions=[AppsHost()]) as client:
        tools = {t.name: wire(t) for t in (await client.list_tools()).tools}
        html = (await client.read_resource(RACE_URI)).contents[0].text
        page = await browser.new_page(viewport={"width": 900, "height": 760})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.route(f"{ORIGIN}/**", serve_files)

        async def relay(method: str, params: dict[str, Any]) -> Any:
            """The host's MCP client: the view's requests, forwarded as the bridge hands them over."""
            if method == "tools/call":
                return wire(await client.call_tool(params["name"], params.get("arguments") or {}))
            if method == "resources/read":
                return wire(await client.read_resource(params["uri"]))
            raise ValueError(method)

        await page.expose_function("mcpRelay", relay)
        await page.goto(f"{ORIGIN}/host.html")
        arguments = {"prompt": "Race for the view", "mode": "all"}
        async with anyio.create_task_group() as tg:
            result: dict[str, Any] = {}

            async def ask() -> None:
                result["ask"] = wire(await client.call_tool("ask", arguments))

            tg.start_soon(ask)
            with anyio.fail_after(30):
                while "ask" not in calls:
                    await anyio.sleep(0.01)
            # The host shows the view for this call: its HTML, its call id and tool, then the call's arguments.
            await page.evaluate("([html, toolInfo, args]) => window.host.show(html, toolInfo, args)",
                                [html, {"id": calls["ask"], "tool": tools["ask"]}, arguments])
            view = page.frame_locator("iframe#view")
            # Text streams in: every leg's column grows while the run goes on.
            for source in VENDOR:
                column = view.locator(f'.column[data-source="{source}"] .text')
                await column.filter(has_text="streams").wait_for(timeout=60_000)
            await wait_for_streams(emu, lambda records: len(records) == 3 and all(r["first_byte_at"]
                                                                                 for r in records), 60)
            before = {s: await view.locator(f'.column[data-source="{s}"] .text').text_content() for s in VENDOR}
            await view.locator(".timeline-row").first.wait_for(timeout=30_000)
            # The docs' screenshots (docs/hosts.md) are rewritten with UPDATE_SCREENSHOTS=1, as the dashboard's are.
            shots = IMG if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
            shots.mkdir(parents=True, exist_ok=True)
            shot, shot_cancelled = shots / "mcp-app-race.png", shots / "mcp-app-race-cancelled.png"
            await page.locator("iframe#view").screenshot(path=str(shot))
            assert not await view.locator("#cancel").is_disabled()
            # Cancel in the view: the host relays `cancel`, the run stops, every vendor stream is closed.
            await view.locator("#cancel").click()
            records = await wait_for_streams(emu, all_ended, 30)
            assert all(r["outcome"] != "open" for r in records)
            with anyio.fail_after(60):
                while "ask" not in result:
                    await anyio.sleep(0.05)
            await page.evaluate("(result) => window.host.result(result)", result["ask"])
            await view.locator('body[data-done="true"]').wait_for(timeout=30_000)
            await view.locator("#cancel").wait_for(state="attached")
            assert await view.locator("#cancel").is_disabled()
            await page.locator("iframe#view").screenshot(path=str(shot_cancelled))
    final = result["ask"]["structuredContent"]
    assert final["status"] == "cancelled"
    for source in VENDOR:
        assert len(before[source] or "") > 0
        leg = next(leg for leg in final["legs"] if leg["source"] == source)
        assert leg["status"] == "cancelled"
    for path in (shot, shot_cancelled):
        assert path.stat().st_size < 200_000, path
    log = await page.evaluate("window.host.log")
    assert not errors, errors
    assert log[0] == "ui/notifications/initialized" and "tools/call cancel" in log, log


def test_the_committed_screenshots_are_small_and_shown():
    """docs/img/mcp-app-*.png (the test above takes them with UPDATE_SCREENSHOTS=1): PNGs under 200 KB, each shown
    in docs/hosts.md."""
    page = (ROOT / "docs" / "hosts.md").read_text(encoding="utf-8")
    shots = sorted(IMG.glob("mcp-app-*.png"))
    assert [shot.name for shot in shots] == ["mcp-app-race-cancelled.png", "mcp-app-race.png"]
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size < 200_000, shot
        assert f"(img/{shot.name})" in page, shot.name
