"""The thin client: the run service of a resident ``llmmixer serve``, reached over its HTTP API and SSE.

:class:`RemoteRuns` offers what the CLI's views read from an in-process :class:`~.runs.Runs` (``snapshot``,
``wait``, ``deltas``, ``cancel``, ``list_runs``, ``servers``) plus the starts, so ``ask``, ``chat``, ``run``,
``agent``, ``models``, ``servers`` and ``logs`` print the same panels, text and JSON either way.

It imports no vendor SDK, no MCP, no Starlette and no uvicorn (``tests/test_resident.py`` checks that in a fresh
process): httpx2 speaks to the service, its SSE reader follows the run, and errors come back as the shared error
tree (``{"error": {...}}`` rebuilt by :func:`~llmmixer.servers.core.errors.error_from_dict`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from ..servers.core.errors import ConnectionFailedError, LLMMixerError, error_from_dict
from ..servers.core.events import TEXT_EVENT_TYPES
from .runtime import RuntimeInfo

__all__ = ["RemoteRuns", "MAX_WAIT_S"]

# A leg's status after each of its events (the run's own snapshot says the same once it ends).
LEG_STATUS = {"leg.queued": "queued", "leg.started": "running", "leg.first_token": "running", "leg.done": "done",
              "leg.error": "error", "leg.cancelled": "cancelled", "leg.skipped": "skipped"}
MAX_WAIT_S = 60.0  # the service answers a ?wait= at most this long; longer waits ask again


class RemoteRuns:
    """``async with RemoteRuns(info) as runs: run_id = await runs.start_ask({"prompt": "hi"})``."""

    def __init__(self, info: RuntimeInfo) -> None:
        self.info = info
        self._client = httpx2.AsyncClient(
            base_url=info.url, headers={"Authorization": f"Bearer {info.token}"},
            timeout=httpx2.Timeout(30.0, read=MAX_WAIT_S + 30.0))

    async def __aenter__(self) -> RemoteRuns:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; its JSON body.

        Raises:
            LLMMixerError: the service's own error, rebuilt; ``connection`` when it cannot be reached.
        """
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise ConnectionFailedError(f"the resident service at {self.info.url} did not answer: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                raise error_from_dict(body)
            raise LLMMixerError(f"the resident service answered {response.status_code}")
        return body

    # -- starting ------------------------------------------------------------------------------------------------

    async def start_ask(self, body: dict[str, Any]) -> str:
        started = await self._call("POST", "/api/runs", json=body)
        return str(started["run_id"])

    async def start_command(self, body: dict[str, Any]) -> str:
        started = await self._call("POST", "/api/commands", json=body)
        return str(started["run_id"])

    async def start_agents(self, body: dict[str, Any]) -> str:
        started = await self._call("POST", "/api/agents", json=body)
        return str(started["run_id"])

    # -- following -----------------------------------------------------------------------------------------------

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/api/runs/{run_id}")
        return result

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (``inf``: until it ends) for the run to end; whether it did."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            wait_s = min(MAX_WAIT_S, max(left, 0.0))
            snapshot = await self._call("GET", f"/api/runs/{run_id}", params={"wait": f"{wait_s:.3f}"})
            if snapshot.get("status") not in ("pending", "running"):
                return True
            if left <= 0:
                return False

    async def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        """``(source, text)`` of every streamed piece of the run, from its first event until ``run.done``."""
        async for event in self.events(run_id):
            if event["type"] in TEXT_EVENT_TYPES:
                yield event["source"], event["data"].get("text", "")

    async def follow(self, run_id: str) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]:
        """At each event of the run: its text deltas (if any) and each leg's status so far, as ``Runs.follow``."""
        statuses: dict[str, str] = {}
        async for event in self.events(run_id):
            fresh = []
            if event["type"] in TEXT_EVENT_TYPES:
                fresh.append((event["source"], event["data"].get("text", "")))
            status = LEG_STATUS.get(event["type"])
            if status is not None:
                statuses[event["source"]] = status
            yield fresh, dict(statuses)

    async def events(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The run's events from its first (``/events?run=ID`` replays what came before), until ``run.done``."""
        last_id: str | None = None
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with self._client.sse("/events", params={"run": run_id}, headers=headers,
                                            timeout=httpx2.Timeout(30.0, read=None)) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        raise error_from_dict(json.loads(source.response.text))
                    async for sse in source:
                        if not sse.data or sse.event == "gap":
                            continue
                        last_id = sse.id or last_id
                        event: dict[str, Any] = json.loads(sse.data)
                        yield event
                        if event["type"] == "run.done":
                            return
            except httpx2.TransportError as exc:
                raise ConnectionFailedError(f"the resident service at {self.info.url} stopped streaming: {exc}") from exc
            # The service cut the stream (it fell behind, or restarted its hub): resume after the last event.

    async def cancel(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/api/runs/{run_id}/cancel", json={})
        return result

    # -- listing -------------------------------------------------------------------------------------------------

    async def list_runs(self, *, limit: int = 50, offset: int = 0, query: str | None = None,
                        conversation_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if query:
            params["q"] = query
        if conversation_id:
            params["conversation_id"] = conversation_id
        page = await self._call("GET", "/api/runs", params=params)
        return list(page["runs"])

    async def servers(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/servers"))["servers"])

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/models"))["servers"])


def cancel_now(info: RuntimeInfo, run_id: str) -> None:
    """Cancel a run from outside any event loop (after Ctrl-C has ended it): one blocking call."""
    try:
        httpx2.post(f"{info.url}/api/runs/{run_id}/cancel", json={},
                    headers={"Authorization": f"Bearer {info.token}"}, timeout=15.0)
    except httpx2.TransportError:
        pass  # the service is gone: so is the run
