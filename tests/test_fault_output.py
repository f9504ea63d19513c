"""Issue 24 item 7: a command's output is stored once at every size. A real command through the real PTY runner (in
process: the same MCP messages over in-memory streams) into a real SQLite file: the stored events hold each byte of
the output once (an output longer than the runner's stream and buffer together has a line naming the bytes it
dropped, never a silent hole), the run record and the final events hold none of it, and every reader (the API's
snapshot, the history, ``llmmixer logs show``) gets the whole output, or its end marked ``truncated`` with every
byte counted in ``output_bytes``."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator import runs as runs_module
from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.logs import show_log
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import SqliteStore
from llmmixer.servers.core.events import Event
from llmmixer.servers.pty_runner.output import OutputBuffer, decode
from llmmixer.servers.pty_runner.run import ProcessGroups, gap_marker, run_command
from llmmixer.servers.pty_runner.runner import Limits

pytestmark = pytest.mark.anyio

LINE = "0123456789abcdefghijklmnopqrstuvwxyz"
BUFFER = Limits().output_limit  # 8 MiB: what the runner keeps, and what it streams while a command runs
MARKER = re.compile(re.escape(gap_marker(123)).replace("123", r"(\d+)"))


def terminal_output(size: int) -> str:
    """What ``yes LINE | head -c size`` shows through a terminal (which ends lines with \\r\\n)."""
    return ((LINE + "\n") * (size // (len(LINE) + 1) + 1))[:size].replace("\n", "\r\n")


def holes(stream: str, output: bytes) -> int:
    """Checks that ``stream`` is ``output`` with some stretches replaced by a marker naming their length in bytes,
    and returns the bytes so named."""
    at, named, parts = 0, 0, MARKER.split(stream)
    for index, part in enumerate(parts):
        if index % 2:  # a marker's number
            at += int(part)
            named += int(part)
            continue
        piece = part.encode()
        assert output[at:at + len(piece)] == piece, f"stream differs from the output at byte {at}"
        at += len(piece)
    assert at == len(output), f"the stream covers {at} of {len(output)} bytes"
    return named


def text_chars(value: Any) -> int:
    """Characters of every string inside ``value`` (keys too): what a store keeps of it, before JSON escapes."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + text_chars(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(text_chars(v) for v in value)
    return len(str(value))


async def all_events(store: SqliteStore, run_id: str) -> list[Event]:
    events: list[Event] = []
    while batch := await store.read_after(events[-1].id if events else None, 1000, run=run_id):
        events.extend(batch)
    return events


@pytest.mark.parametrize("size", [40_000, 1 << 20, 9 << 20, 20 << 20], ids=["40KB", "1MiB", "9MiB", "20MiB"])
async def test_a_commands_output_is_stored_once_at_every_size(size: int, tmp_path: Path, monkeypatch: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runs_module, "CACHE_RUNS", 0)  # every reader below reads the store
    monkeypatch.chdir(tmp_path)  # the runner's roots: where it starts
    db = tmp_path / "events.db"
    async with Runs(Config(servers=default_servers(inprocess=True), settings=Settings()), SqliteStore(db)) as runs:
        with anyio.fail_after(300):
            run_id = await runs.start_command(f"yes {LINE} | head -c {size}", cwd=str(tmp_path), timeout_s=240)
            assert await runs.wait(run_id, 280)
            assert await runs.flush()
        result = await runs.snapshot(run_id)  # what GET /api/runs/ID answers
        history = await runs.list_runs(limit=5)
        events = await all_events(runs.store, run_id)
        record = await runs.store.get_run(run_id)
    output = terminal_output(size)
    assert result["status"] == "done" and result["exit_code"] == 0 and "incomplete" not in result

    # Stored once: the pty.output events are the output, each byte once, holes named; nothing else holds any.
    stream = "".join(e.data["text"] for e in events if e.type == "pty.output")
    named = holes(stream, output.encode())
    kept = len(output) - named
    assert stream.endswith(output[-BUFFER:])  # the last 8 MiB at least (a stream that kept up has the first too)
    if len(output) <= BUFFER:
        assert named == 0  # a buffer that holds it all never drops a byte, however slow the stream
    elif len(output) > 2 * BUFFER:
        assert named >= len(output) - 2 * BUFFER  # streamed while running and kept at the end: 8 MiB each at most
    rest = sum(text_chars(e.data) for e in events if e.type != "pty.output")
    assert record is not None and rest < 2_000 and len(json.dumps(record)) < 2_000
    assert text_chars([e.data for e in events]) < kept + 64 * (len(events) + 1) + 2_000

    # Readers: the whole output, or its end marked truncated, every byte counted.
    assert result["output_bytes"] == len(output)
    if len(output) <= BUFFER:
        assert result["output"] == output and result["truncated"] is False
    else:
        assert result["truncated"] is True and result["output"] == output[-BUFFER:]
    assert history[0]["run_id"] == run_id and history[0]["status"] == "done"
    capsys.readouterr()
    assert await show_log(f"sqlite:///{db}", run_id) == 0
    shown = capsys.readouterr().out
    assert result["output"] in shown and shown.rstrip().endswith("exit 0")
    assert (f"[the last {BUFFER} of {len(output)} bytes of output]" in shown) == (len(output) > BUFFER)


@pytest.mark.parametrize("content", ["utf8", "garbage"])
async def test_the_result_ends_the_stream_when_cuts_fall_inside_characters(content: str, tmp_path: Path) -> None:
    """Small limits, an output of 2-, 3- and 4-byte characters (or random bytes) many times their size: wherever
    the stream's limit and the buffer's start fall, the stream is the output once with its hole named, and the
    result's text is the end of the stream, so the stored form can leave it out."""
    limit = 10_007  # odd on purpose: cuts land inside characters
    if content == "utf8":
        data = ("aé€😀" * 20_000).encode()
    else:
        data = random.Random(7).randbytes(70_000)
    (tmp_path / "data").write_bytes(data)
    seen: list[str] = []

    async def on_output(text: str) -> None:
        seen.append(text)

    with anyio.fail_after(60):
        result = await run_command("cat data", cwd=str(tmp_path), env=dict(os.environ), backend="pipe",
                                   timeout_s=50, stdin=None, output_limit=limit, stream_limit=limit,
                                   groups=ProcessGroups(), on_output=on_output)
    stream = "".join(seen)
    assert result.exit_code == 0 and result.truncated and result.output_bytes == len(data)
    assert stream.endswith(result.output) and len(result.output.encode()) > limit - 4
    if content == "utf8":
        assert holes(stream, data) >= len(data) - 2 * limit
    else:
        assert len(MARKER.findall(stream)) >= 1


@pytest.mark.parametrize("keep", [10_001, 10_002, 10_003])
def test_a_buffer_that_dropped_its_start_begins_on_a_character(keep: int) -> None:
    """The result's text starts where a decode of the whole output has a character boundary, so it is the end of
    a stream that got every byte, even when the buffer's first byte is inside a character."""
    data = ("aé€😀" * 5_000).encode()
    buffer = OutputBuffer(keep)
    buffer.append(data)
    kept = buffer.since(0, final=True)
    assert decode(data).endswith(decode(kept.data)) and "\ufffd" not in decode(kept.data)
    assert kept.dropped + len(kept.data) == len(data) and kept.dropped >= len(data) - keep
