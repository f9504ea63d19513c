"""``GET /events`` over real stores on a real port: the wire format, resuming strictly after Last-Event-ID, live
hand-over, run filters, gaps, bad ids, and a slow client cut on overflow without holding up anyone else.
"""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import httpx2
import pytest
from sse_support import (
    STORE_KINDS,
    all_events,
    ev,
    opened_store,
    read_stream,
    store_url,
    web,
)

from llmmixer.orchestrator.stores.base import EventStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


async def append(store: EventStore, count: int, start: int = 0, run: str = "run-a") -> list[str]:
    return [(await store.append(ev(i, run=run))).id or "" for i in range(start, start + count)]


async def test_wire_format_ids_types_retry_once_and_keepalive(tmp_path: Path) -> None:
    async with opened_store(store_url("memory", tmp_path)) as store, web(store, keepalive_s=0.2, retry_ms=1500) as (
            url, _):
        ids = await append(store, 3)
        raw = ""
        async with httpx2.AsyncClient(timeout=10) as client:
            with anyio.fail_after(10):
                async with client.stream("GET", f"{url}/events", headers={"Last-Event-ID": "0"}) as response:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    assert response.headers["cache-control"] == "no-store"
                    async for text in response.aiter_text():
                        raw += text
                        if raw.count(": keepalive") >= 2:
                            break
    blocks = [block for block in raw.split("\n\n") if block]
    assert blocks[0] == "retry: 1500"
    assert raw.count("retry:") == 1
    stored = await all_events(store)
    for block, event, event_id in zip(blocks[1:4], stored, ids, strict=True):
        assert block == f"id: {event_id}\nevent: delta\ndata: {event.to_json()}"
    assert blocks[4:6] == [": keepalive", ": keepalive"]  # idle stream: comments, nothing else


async def test_resume_replays_strictly_after_then_continues_live(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path)) as store, web(store) as (url, _):
        ids = await append(store, 10)
        async with httpx2.AsyncClient(timeout=10) as client, anyio.create_task_group() as tg:
            results = {}

            async def read(name: str, header: str | None, query: str | None) -> None:
                results[name] = await read_stream(client, url, count=8, last_event_id=header, query_id=query)

            with anyio.fail_after(30):
                tg.start_soon(read, "header", ids[4], None)
                tg.start_soon(read, "query", None, ids[4])
                # A browser reconnecting keeps its original ?last_event_id= and sends a newer header: header wins.
                tg.start_soon(read, "both", ids[6], ids[1])
                await app_streams(url, client, 3)
                live = await append(store, 5, start=10)
        assert results["header"].ids == ids[5:] + live[:3]
        assert results["query"].ids == ids[5:] + live[:3]
        assert results["both"].ids == ids[7:] + live
        stored = {e.id: e.to_dict() for e in await all_events(store)}
        assert all(event == stored[event["id"]] for event in results["header"].events)
        assert not any(r.gaps for r in results.values())


async def app_streams(url: str, client: httpx2.AsyncClient, count: int) -> None:
    """Wait until the server holds ``count`` open event streams."""
    while (await client.get(f"{url}/healthz")).json()["streams"] < count:
        await anyio.sleep(0.01)


async def test_without_last_event_id_the_stream_is_live_only(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path)) as store, web(store) as (url, app):
        await append(store, 5)
        async with httpx2.AsyncClient(timeout=10) as client, anyio.create_task_group() as tg:
            got = {}

            async def read() -> None:
                got["live"] = await read_stream(client, url, count=3)

            with anyio.fail_after(20):
                tg.start_soon(read)
                await app.state.streams.wait_until(lambda r: r.open_count == 1)
                # The stream subscribes when its body starts; wait for it rather than guess.
                while app.state.hub.subscriber_count < 1:
                    await anyio.sleep(0.005)
                live = await append(store, 3, start=5)
        assert got["live"].ids == live


async def test_run_filter_replays_and_streams_only_that_run(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path)) as store, web(store) as (url, app):
        mixed = [(await store.append(ev(i, run="run-a" if i % 3 else "run-b"))).id for i in range(30)]
        assert mixed
        async with httpx2.AsyncClient(timeout=10) as client, anyio.create_task_group() as tg:
            got = {}

            async def read() -> None:
                got["b"] = await read_stream(client, url, count=15, run="run-b", last_event_id=mixed[0])

            with anyio.fail_after(20):
                tg.start_soon(read)
                await app.state.streams.wait_until(lambda r: r.open_count == 1)
                for i in range(30, 60):
                    await store.append(ev(i, run="run-a" if i % 3 else "run-b"))
        expected = [e.id for e in await all_events(store, run="run-b")][1:16]
        assert got["b"].ids == expected
        assert {e["run"] for e in got["b"].events} == {"run-b"}


async def test_run_filter_without_an_id_starts_at_the_runs_first_event(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path)) as store, web(store) as (url, app):
        for i in range(12):
            await store.append(ev(i, run="run-a" if i % 2 else "run-b"))
        async with httpx2.AsyncClient(timeout=10) as client, anyio.create_task_group() as tg:
            got = {}

            async def read() -> None:
                got["b"] = await read_stream(client, url, count=9, run="run-b")

            with anyio.fail_after(20):
                tg.start_soon(read)
                await app.state.streams.wait_until(lambda r: r.open_count == 1)
                while app.state.hub.subscriber_count < 1:
                    await anyio.sleep(0.005)
                for i in range(12, 18):
                    await store.append(ev(i, run="run-a" if i % 2 else "run-b"))
        assert got["b"].ids == [e.id for e in await all_events(store, run="run-b")]
        assert len(got["b"].ids) == 9 and not got["b"].gaps


async def test_malformed_ids_and_run_filters_are_400_json(kind: str, tmp_path: Path) -> None:
    async with opened_store(store_url(kind, tmp_path)) as store, web(store) as (url, _):
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            with anyio.fail_after(20):
                for garbage in ("not-an-id", "-5", "1e9999", "'; DROP TABLE events;--", "9" * 40):
                    for response in (await client.get("/events", headers={"Last-Event-ID": garbage}),
                                     await client.get("/events", params={"last_event_id": garbage})):
                        assert response.status_code == 400
                        assert response.headers["content-type"] == "application/json"
                        error = response.json()["error"]
                        assert error["kind"] == "invalid_input" and "event id" in error["message"]
                bad_run = await client.get("/events", params={"run": "../../etc/passwd"})
                assert bad_run.status_code == 400 and bad_run.json()["error"]["kind"] == "invalid_input"
                assert (await client.get("/healthz")).json()["ok"] is True


async def test_id_from_a_restarted_memory_store_gets_a_gap_then_everything(tmp_path: Path) -> None:
    async with opened_store("memory") as store, web(store) as (url, _):
        ids = await append(store, 5)
        async with httpx2.AsyncClient(timeout=10) as client:
            with anyio.fail_after(10):
                # The client saw id 500 from the previous process; this store only has 1..5.
                got = await read_stream(client, url, count=5, last_event_id="500")
        assert got.order[0] == "gap"
        assert got.gaps == [{"last_event_id": "500", "first_available": ids[0]}]
        assert got.ids == ids


async def test_server_side_cut_is_resumed_without_duplicates(tmp_path: Path) -> None:
    async with opened_store("memory") as store, web(store) as (url, app):
        ids = await append(store, 20)
        async with httpx2.AsyncClient(timeout=10) as client:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    first: dict[str, object] = {}

                    async def read() -> None:
                        first["stream"] = await read_stream(client, url, count=10_000, last_event_id="0")

                    tg.start_soon(read)
                    await app.state.streams.wait_until(lambda r: r.open_count == 1)
                    while app.state.hub.subscriber_count < 1:
                        await anyio.sleep(0.005)
                    await append(store, 1, start=20)
                    assert app.state.streams.drop_all() == 1
                cut = first["stream"]
                assert cut.ended == "cut"  # type: ignore[attr-defined]
                later = await append(store, 5, start=21)
                everything = [e.id for e in await all_events(store)]
                missing = len(everything) - len(cut.ids)  # type: ignore[attr-defined]
                resumed = await read_stream(client, url, count=missing, last_event_id=cut.ids[-1])  # type: ignore[attr-defined]
        assert everything[:20] == ids and everything[-5:] == later
        assert cut.ids + resumed.ids == everything  # type: ignore[attr-defined]


def _slow_client(port: int, path: str) -> socket.socket:
    """A raw client with a tiny receive buffer that sends its request and then reads nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    sock.close()
    return b"".join(chunks)


async def test_slow_client_is_cut_on_overflow_and_others_are_not_held_up(tmp_path: Path) -> None:
    async with opened_store("memory://?maxlen=30000") as store, web(store, max_queue=500) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        slow = await anyio.to_thread.run_sync(_slow_client, port, "/events?last_event_id=0")
        padding = "x" * 2000
        written = 0
        async with httpx2.AsyncClient(timeout=30) as client, anyio.create_task_group() as tg:
            got = {}

            async def fast() -> None:
                got["fast"] = await read_stream(client, url, count=10**9, last_event_id="0", until_type="run.done")

            with anyio.fail_after(60):
                await app.state.streams.wait_until(lambda r: r.open_count == 1)
                tg.start_soon(fast)
                await app.state.streams.wait_until(lambda r: r.open_count == 2)
                # Keep writing until the slow client's socket buffers are full and its queue overflows (a few MB,
                # however large this kernel's buffers are), then a little more.
                while app.state.streams.overflowed == 0 and written < 25_000:
                    await store.append(ev(written, pad=padding))
                    written += 1
                    if written % 20 == 0:
                        await anyio.sleep(0)
                for _ in range(100):
                    await store.append(ev(written, pad=padding))
                    written += 1
                await store.append(ev(written, type_="run.done"))
        total = written + 1
        assert app.state.streams.overflowed == 1
        assert got["fast"].ids == [str(i) for i in range(1, total + 1)]  # never held up, nothing lost
        raw = await anyio.to_thread.run_sync(_drain, slow)
        assert raw.startswith(b"HTTP/1.1 200")
        # The slow client got an in-order prefix, then its connection was closed; it resumes from the store.
        seen = [line.split(b": ", 1)[1].decode() for line in raw.split(b"\n") if line.startswith(b"id: ")]
        assert 0 < len(seen) < total and seen == [str(i) for i in range(1, len(seen) + 1)]
        async with httpx2.AsyncClient(timeout=30) as client:
            with anyio.fail_after(30):
                rest = await read_stream(client, url, count=total - len(seen), last_event_id=seen[-1])
        assert seen + rest.ids == [str(i) for i in range(1, total + 1)]
        assert rest.events[-1]["type"] == "run.done"
