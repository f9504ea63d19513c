"""Issue 25, item 4: resumable Streamable HTTP. A host on the official TypeScript SDK calls ``generate`` through a
TCP proxy that really cuts the connection in the middle of the call's SSE stream (after the third progress
notification); the SDK reconnects with ``Last-Event-ID`` after the server's ``retry:``, and every progress delta
arrives exactly once, in order, then the result. The same call without an event store would lose the stream."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import server_env
from test_ts_sdk import call, node_modules, run_host, served

__all__ = ["node_modules"]

from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.servers.core.event_store import MemoryEventStore
from mcp_types import JSONRPCNotification, JSONRPCResponse
from llmmixer.servers.emulators.server import EmulatorServer, free_port

REPLY = "Resumed 안녕하세요 across a cut connection 🚀 — every delta once, in order, none twice, none lost."
TOKENS = 40


class CuttingProxy:
    """Forwards TCP to ``target``; cuts the first connection whose server side has sent ``cut_after`` progress
    notifications (both sockets closed at once, as a dropped network would), then forwards the rest untouched."""

    def __init__(self, target: int, cut_after: int = 3) -> None:
        self.target = target
        self.cut_after = cut_after
        self.port = free_port()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def start(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        seen = 0
        try:
            while data := source.recv(65536):
                if from_server:
                    seen += data.count(b"notifications/progress")
                    with self._lock:
                        cut = self.cuts == 0 and seen >= self.cut_after
                        if cut:
                            self.cuts += 1
                    if cut:
                        for sock in (source, sink):
                            sock.shutdown(socket.SHUT_RDWR)
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@contextmanager
def proxied(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], CuttingProxy]]:
    port = int(httpx2.URL(spec["url"]).port or 0)
    proxy = CuttingProxy(port).start()
    try:
        yield {"kind": "http", "url": f"http://127.0.0.1:{proxy.port}/mcp"}, proxy
    finally:
        proxy.close()


@pytest.mark.timeout(300)
def test_a_cut_stream_resumes_and_every_delta_arrives_exactly_once(emu: EmulatorServer, node_modules: Path,
                                                                   tmp_path: Path) -> None:
    # Paced, so the call is still streaming when the cut comes and while the host waits its retry interval.
    emu.set_behaviour("anthropic", reply=REPLY, tokens=TOKENS, inter_token_ms=40)
    with served([script_path("llmmixer-claude")], server_env(emu), "http", tmp_path) as spec:
        with proxied(spec) as (transport, proxy):
            report = run_host(node_modules, transport, [call("generate", {"prompt": "hi"}, progress=True)],
                              tmp_path)
    assert proxy.cuts == 1, "the connection was never cut mid-call"
    (outcome,) = report["ops"][0]
    assert "thrown" not in outcome and not outcome["isError"], outcome
    assert outcome["payload"]["text"] == REPLY
    assert len(outcome["deltas"]) == TOKENS, (len(outcome["deltas"]), outcome["deltas"])
    assert "".join(outcome["deltas"]) == REPLY  # in order, none twice, none lost
    # The host's SDK reports the cut itself, and nothing else.
    assert [e for e in report["errors"] if "SSE stream disconnected" not in e] == [], report["errors"]


def test_the_store_replays_what_followed_then_follows_its_stream_to_the_response() -> None:
    def note(method: str) -> Any:
        return JSONRPCNotification(jsonrpc="2.0", method=method)

    async def scenario() -> None:
        store = MemoryEventStore(max_events_per_stream=5, max_streams=2)
        ids = [await store.store_event(1, None), await store.store_event(1, note("m0")),
               await store.store_event(1, note("m1"))]
        other = await store.store_event(2, note("other"))
        sent: list[tuple[str | None, str]] = []

        async def send(event: Any) -> None:
            message = event.message
            sent.append((event.event_id, getattr(message, "method", "response")))

        async with anyio.create_task_group() as tg:
            async def follow() -> None:
                assert await store.replay_events_after(ids[0], send) is None

            tg.start_soon(follow)
            with anyio.fail_after(10):
                while len(sent) < 2:
                    await anyio.sleep(0.01)
            # Stored while the follower waits: sent once, in order; stream 2 never.
            late = await store.store_event(1, note("m2"))
            done = await store.store_event(1, JSONRPCResponse(jsonrpc="2.0", id=1, result={}))
        assert sent == [(ids[1], "m0"), (ids[2], "m1"), (late, "m2"), (done, "response")]
        # Bounded: a third stream drops the least recently written (2); its ids replay nothing (no resumption).
        await store.store_event(3, None)
        sent.clear()
        assert await store.replay_events_after(other, send) is None and sent == []
        assert await store.replay_events_after("not-an-id", send) is None

    anyio.run(scenario)
