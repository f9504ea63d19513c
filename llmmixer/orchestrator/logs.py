"""``llmmixer logs``: the run log read straight from the store (no model server is started), and ``llmmixer
models``' table. Plain text when stdout is not a terminal; rich tables when it is."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from . import history, run_record, timeline
from .live import print_plain

__all__ = ["list_logs", "show_log", "print_models", "print_stats"]

EXIT_OK, EXIT_FAILED = 0, 1


async def _open(url: str) -> Any:
    from .stores import open_store

    store = open_store(url)
    await store.open()
    return store


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if isinstance(ts, int | float) else "?"


def _cost(line: dict[str, Any]) -> str:
    total = line.get("total_cost_usd")
    if total is None:
        return "—"
    return f"${total:.6f}{'+' if line.get('total_cost_partial') else ''}"


async def print_stats(url: str, since: float | None, *, as_json: bool) -> int:
    """``llmmixer logs --stats``: per mode and model, what racing bought against what it spent (stats.py)."""
    from . import stats

    store = await _open(url)
    try:
        records = [record async for record in stats.records_since(store, since)]
    finally:
        await store.close()
    figures = stats.compute(records, since)
    sys.stdout.write(json.dumps(figures.to_dict(), ensure_ascii=False) + "\n" if as_json else stats.render(figures))
    return EXIT_OK


async def list_logs(url: str, *, count: int, as_json: bool, query: str | None, conversation_id: str | None) -> int:
    store = await _open(url)
    try:
        records = await store.list_runs(limit=count, query=query, conversation_id=conversation_id)
    finally:
        await store.close()
    if conversation_id is not None:
        records.reverse()  # a conversation reads oldest first
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not records:
        where = "" if url.startswith(("sqlite", "redis")) else " (the memory store keeps nothing between commands)"
        sys.stdout.write(f"no runs in {store.url}{where}\n")  # the store's own: its password hidden
        return EXIT_OK
    for record in records:
        line = history.summary(record)
        what = record.get("prompt") or record.get("command") or ""
        head = (f"{record['run_id']}  {_when(record.get('created'))}  {line.get('status', '?')}  "
                f"{record.get('mode') or record.get('kind')}  {','.join(record.get('models') or [])}  "
                f"winner {line.get('winner') or '—'}  {_cost(line)}  conversation {record.get('conversation_id') or '—'}")
        sys.stdout.write(head + "\n")
        sys.stdout.write(f"  > {_one_line(what)}\n")
        if record.get("answer"):
            sys.stdout.write(f"  < {_one_line(record['answer'])}\n")
    return EXIT_OK


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


async def show_log(url: str, run_id: str, *, timeline: bool = False, as_json: bool = False) -> int:
    store = await _open(url)
    try:
        record = await store.get_run(run_id)
        events = await _events_of(store, run_id) if record is not None else []
    finally:
        await store.close()
    if record is not None and record.get("result") and run_record.needs_events(record["result"]):
        # The log keeps each streamed text once, in the events: put it back.
        record = {**record, "result": run_record.expand(record["result"], events)}
    line = _timeline_of(record, events) if timeline and record is not None else None
    if record is None:
        sys.stderr.write(f"error: no run {run_id!r} in {url} (llmmixer logs lists the runs)\n")
        return EXIT_FAILED
    if as_json:
        sys.stdout.write(json.dumps({**record, **({"timeline": line} if line else {})}, ensure_ascii=False,
                                    indent=2) + "\n")
        return EXIT_OK
    out = sys.stdout
    out.write(f"run {record['run_id']}  {_when(record.get('created'))}  {record.get('status')}\n")
    if record.get("conversation_id"):
        out.write(f"conversation {record['conversation_id']}\n")
    if record.get("kind") == "command":
        out.write(f"command: {record.get('command')}\n")
    else:
        out.write(f"mode {record.get('mode')}  models {', '.join(record.get('models') or [])}\n")
        if record.get("options"):
            out.write(f"options {json.dumps(record['options'], ensure_ascii=False)}\n")
        if record.get("system"):
            out.write(f"system: {record['system']}\n")
        out.write(f"prompt: {record.get('prompt')}\n\n")
    result = record.get("result")
    if result is None:
        out.write("(the run has not finished, or the process running it stopped)\n")
    elif record.get("kind") == "command":
        output = str(result.get("output") or "")
        if result.get("truncated"):
            out.write(f"[the last {len(output.encode())} of {result.get('output_bytes', '?')} bytes of output]\n")
        out.write(output)
        out.write(f"\nexit {result.get('exit_code')}\n")
    else:
        print_plain(result, out)
        if "data" in result:
            out.write("data: " + json.dumps(result["data"], ensure_ascii=False) + "\n")
    if line is not None:
        out.write("\n" + timeline_text(line) + "\n")
    return EXIT_OK


def timeline_text(line: dict[str, Any]) -> str:
    return timeline.render_text(line)


async def _events_of(store: Any, run_id: str) -> list[Any]:
    events: list[Any] = []
    after = None
    while True:
        batch = await store.read_after(after, 1000, run=run_id)
        if not batch:
            return events
        events.extend(batch)
        after = batch[-1].id


def _timeline_of(record: dict[str, Any], events: list[Any]) -> dict[str, Any] | None:
    result = record.get("result") or {}
    if result.get("timeline"):
        return result["timeline"]
    # A run recorded without a timeline: rebuild it from its events, while the store keeps them.
    return timeline.from_events(events, result.get("legs")) if events else None


def print_models(listings: list[dict[str, Any]]) -> None:
    out = sys.stdout
    for listing in listings:
        out.write(f"{listing['source']}: default {listing.get('default_model') or '?'}\n")
        if listing.get("error"):
            error = listing["error"]
            out.write(f"  ({error.get('kind')}: {error.get('message')})\n")
        for model in listing["models"]:
            price = model.get("price_per_million")
            priced = f"${price[0]:g} / ${price[1]:g} per M tokens" if price else "no price"
            aliases = f"  aliases: {', '.join(model['aliases'])}" if model["aliases"] else ""
            mark = "*" if model.get("default") else " "
            out.write(f" {mark} {model['id']}  ({priced}){aliases}\n")
