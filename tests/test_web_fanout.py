"""The hub's coalesced fan-out (issues 16 and 22): with enough streams open that sends are joined while the streams
write, every subscriber still gets every event exactly once, in order, the bytes of a batch are shared, not
copied, and a stream that stops reading holds up no one."""

from __future__ import annotations

import anyio
import pytest

from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.fanout import MIN_PACED_STREAMS, EventHub
from llmmixer.servers.core.events import Event

pytestmark = pytest.mark.anyio

EVENTS = 2_000


async def test_paced_frames_lose_nothing_and_share_their_bytes() -> None:
    store = open_store("memory://?maxlen=100000")
    await store.open()
    hub = EventHub(store)
    subscribers = MIN_PACED_STREAMS + 10
    received: list[list[int]] = [[] for _ in range(subscribers)]
    chunks: list[list[bytes]] = [[] for _ in range(subscribers)]
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        subs = [hub.subscribe(run="r" if n % 3 == 0 else None) for n in range(subscribers)]
        stuck = hub.subscribe()  # never reads: it must hold up no one (the hub waits for all but stragglers)

        async def consume(n: int) -> None:
            wanted = EVENTS // 2 if n % 3 == 0 else EVENTS
            while len(received[n]) < wanted:
                for batch in await subs[n].get_batches():
                    chunks[n].append(batch.chunk)
                    received[n] += [item.key[0] for item in batch.items]

        with anyio.fail_after(60):
            async with anyio.create_task_group() as readers:
                for n in range(subscribers):
                    readers.start_soon(consume, n)
                for i in range(EVENTS):
                    await store.append(Event(run="r" if i % 2 else "other", source="claude", type="delta",
                                             data={"i": i}))
                    if i % 50 == 0:
                        await anyio.sleep(0)
        tg.cancel_scope.cancel()
    everything = [int(event.id or 0) for event in await store.read_after(None, EVENTS)]
    mine = [int(event.id or 0) for event in await store.read_after(None, EVENTS, run="r")]
    for n in range(subscribers):
        assert received[n] == (mine if n % 3 == 0 else everything)
    # Unfiltered streams were handed the very same bytes objects: one join per batch for everyone.
    assert all(a is b for a, b in zip(chunks[1], chunks[2]))
    assert len(chunks[1]) < EVENTS  # and events were coalesced into fewer chunks than events
    assert len(await stuck.get()) == EVENTS  # the stuck stream still has every event queued, none lost
    await store.close()
