"""The race inside the host: ``llmmixer mcp``'s view for MCP Apps hosts (the ``io.modelcontextprotocol/ui``
extension, final since 2026-01-26).

``ask`` and ``agent`` name ``ui://llmmixer/race`` in their ``_meta.ui.resourceUri``. A host that renders MCP Apps
reads that resource (one self-contained HTML page: the dashboard's run model, rendering and styles from
``web/static``, inlined) and shows it in a sandboxed iframe while the call runs. The view cannot reach this server
by itself (its CSP allows no connection): it calls tools through the host.

- ``race_events`` (visibility ``app``: the host never offers it to its model) reads the run's events, the dashboard's
  event model, after a cursor, waiting for the next ones. The view names the run by the host's ``tools/call`` id of
  the ``ask`` or ``agent`` call (``hostContext.toolInfo.id``): :class:`CallJobs` remembers which job each call on
  each session started. Once the call's result is in, its ``job_id`` names the run.
- ``cancel`` (an ordinary tool) stops the run from the view's Cancel button.

Hosts without MCP Apps see what they always saw: for a client that did not declare the extension, ``tools/list``
has neither ``race_events`` nor the ``_meta.ui`` of ``ask`` and ``agent`` (:class:`HideAppTools`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from importlib import resources
from typing import Annotated, Any

import anyio
from mcp.server.apps import Apps, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ListToolsResult
from pydantic import BaseModel, Field

from ..servers.core.annotations import reads
from ..servers.core.errors import NotFoundError
from ..servers.core.events import LEG_ENDS, TIMELINE_TYPES
from ..servers.core.results import ok_result
from .service import RunService

__all__ = ["RACE_URI", "UI_META", "CallJobs", "HideAppTools", "race_app", "race_html"]

RACE_URI = "ui://llmmixer/race"
UI_META: dict[str, Any] = {"ui": {"resourceUri": RACE_URI}}
MAX_WAIT_S = 30.0  # one race_events call's longest wait: well below any host's tool timeout
CALLS_KEPT = 256  # (session, call id) -> job id pairs remembered; a view asks right after its call starts

_STATIC = ("app.css", "timeline.js", "agents.js", "run.js", "race.js")


def race_html() -> str:
    """The view: ``web/static/race.html`` with its styles and scripts inlined (a sandboxed view loads nothing) and
    the timeline's event types from their one definition (:mod:`llmmixer.servers.core.events`)."""
    static = resources.files("llmmixer.orchestrator.web") / "static"
    html = (static / "race.html").read_text(encoding="utf-8")
    config = json.dumps({"timeline_types": sorted(TIMELINE_TYPES), "leg_ends": dict(LEG_ENDS)})
    html = html.replace("/*race-config*/", f"window.LLMMixerRaceConfig = {config};")
    for name in _STATIC:
        body = (static / name).read_text(encoding="utf-8").replace("</script", "<\\/script")
        html = html.replace(f"/*inline:{name}*/", body)
    return html


class CallJobs:
    """Which job each ``ask``/``agent`` call started, by the caller's session and the call's JSON-RPC id."""

    def __init__(self, keep: int = CALLS_KEPT) -> None:
        self._jobs: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._keep = keep
        self._changed = anyio.Event()

    @staticmethod
    def _key(ctx: Context, call_id: str) -> tuple[str, str]:
        # Streamable HTTP with sessions: the session. Stdio has one client; stateless HTTP has no session to tell
        # its clients apart by, and every one of them holds the server's token (as every dashboard viewer does).
        return (ctx.headers or {}).get("mcp-session-id", ""), call_id

    def started(self, ctx: Context, job_id: str) -> None:
        self._jobs[self._key(ctx, ctx.request_id)] = job_id
        while len(self._jobs) > self._keep:
            self._jobs.popitem(last=False)
        self._changed.set()
        self._changed = anyio.Event()

    async def job_of(self, ctx: Context, call_id: str, wait_s: float) -> str | None:
        """The job of call ``call_id`` on ``ctx``'s session, waiting up to ``wait_s`` for the call to start one."""
        key = self._key(ctx, call_id)
        with anyio.move_on_after(wait_s):
            while key not in self._jobs:
                await self._changed.wait()
        return self._jobs.get(key)


class RaceEventsOut(BaseModel):
    job_id: str | None = Field(description="null: that call has started no job (yet)")
    events: list[dict[str, Any]] = Field(description="the run's events after `after`, oldest first")
    after: str | None = Field(description="pass it back as `after` for the next ones")


RACE_EVENTS_DESCRIPTION = ("For the race view: a run's events after `after`, waiting up to wait_s for the next. "
                           "Name the run by job_id, or by call (the tools/call id of its ask or agent call).")


def race_app(jobs: RunService, calls: CallJobs) -> Apps:
    """The MCP Apps extension of ``llmmixer mcp``: the race view's resource and its ``race_events`` tool."""
    apps = Apps()
    apps.add_html_resource(RACE_URI, race_html(), name="race", title="LLMMixer race",
                           description="The legs of an ask or agent run as they stream, its timeline, cost, Cancel.",
                           prefers_border=True)

    @apps.tool(resource_uri=RACE_URI, visibility=["app"], description=RACE_EVENTS_DESCRIPTION,
               annotations=reads("Read a run's events", open_world=False))
    async def race_events(ctx: Context, job_id: str | None = None, call: str | None = None, after: str | None = None,
                          wait_s: Annotated[float, Field(ge=0, le=MAX_WAIT_S)] = 10.0
                          ) -> Annotated[CallToolResult, RaceEventsOut]:
        try:
            if job_id is None and call is not None:
                job_id = await calls.job_of(ctx, call, wait_s)
            if job_id is None:
                return ok_result(RaceEventsOut(job_id=None, events=[], after=after).model_dump())
            events = await jobs.events(jobs.check_id(job_id), after, wait_s)
        except NotFoundError:  # not stored (yet): nothing to show; other errors answer as every tool's do
            events = []
        out = RaceEventsOut(job_id=job_id, events=[e.to_dict() for e in events],
                            after=events[-1].id if events else after)
        return ok_result(out.model_dump())

    return apps


class HideAppTools:
    """Server middleware: for a client that did not declare MCP Apps, ``tools/list`` is what it always was: the
    app-only tools are left out and no tool carries ``_meta.ui`` (every byte of the list costs such a host's model
    tokens on every turn, and the view is of no use to it)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or client_supports_apps(ctx):
            return result
        if isinstance(result, ListToolsResult):  # the handler's model, or its wire form (a dict) once serialized
            result = result.model_dump(by_alias=True, exclude_none=True, mode="json")
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            return {**result, "tools": [_without_ui(t) for t in result["tools"] if not _app_only(t.get("_meta"))]}
        return result


def _app_only(meta: Any) -> bool:
    ui = meta.get("ui") if isinstance(meta, dict) else None
    return isinstance(ui, dict) and ui.get("visibility") == ["app"]


def _without_ui(tool: dict[str, Any]) -> dict[str, Any]:
    meta = tool.get("_meta")
    if not isinstance(meta, dict) or "ui" not in meta:
        return tool
    rest = {k: v for k, v in meta.items() if k != "ui"}
    return {k: v for k, v in tool.items() if k != "_meta"} | ({"_meta": rest} if rest else {})
