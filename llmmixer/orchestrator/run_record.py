"""A run as the event store keeps it: each piece of text once, and the final result rebuilt from the events.

A run's text streams as ``delta`` events (a model's tokens) and ``pty.output`` events (a command's output). The
events that end a leg or a run used to repeat it: ``leg.done`` held the leg's whole text, ``pty.exit`` the whole
output, and ``run.done`` both again, so a command's output was stored three times. :func:`compact` drops a copy
that is exactly what was streamed and leaves its length instead:

- a leg (in ``leg.done`` and in ``run.done``'s ``legs``): ``text`` becomes ``"text_chars": N`` when it equals that
  source's deltas;
- a command (``pty.exit``, ``run.done``): ``output`` becomes ``"output_chars": N`` when the streamed output ends
  with it. The runner streams every byte of an output once and returns its last bytes (all of them up to
  its 8 MiB buffer), so the result always ends the stream, at every size: an output longer than the buffer plus
  the first 8 MiB streamed has a line in the stream naming the bytes dropped between them, and the result says
  ``truncated`` and counts every byte in ``output_bytes``.

A copy that differs from the stream (an adapter that did not stream, a structured reply) is kept as it is.
:func:`snapshot` is the reverse: the run's final result from its stored events, with the text put back; when the
store no longer holds every delta (retention, a ``store.gap``), the result says ``"incomplete": true``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..servers.core.events import LEG_ENDS, TEXT_EVENT_TYPES, Event

__all__ = ["compact", "expand", "needs_events", "snapshot", "streamed_text"]

def streamed_text(deltas: Iterable[tuple[str, str]]) -> tuple[dict[str, str], str]:
    """``(text per source, all command output)`` from ``(source, text)`` pairs in order."""
    per_source: dict[str, list[str]] = {}
    for source, text in deltas:
        per_source.setdefault(source, []).append(text)
    joined = {source: "".join(parts) for source, parts in per_source.items()}
    return joined, joined.get("pty", "")


def _compact_leg(leg: dict[str, Any], streamed: dict[str, str]) -> dict[str, Any]:
    text = leg.get("text")
    if isinstance(text, str) and text and text == streamed.get(leg.get("source", ""), None):
        leg = {key: value for key, value in leg.items() if key != "text"}
        leg["text_chars"] = len(text)
    return leg


def _compact_output(data: dict[str, Any], output: str) -> dict[str, Any]:
    text = data.get("output")
    if isinstance(text, str) and text and output.endswith(text):
        data = {key: value for key, value in data.items() if key != "output"}
        data["output_chars"] = len(text)
    return data


def compact(type_: str, source: str, data: dict[str, Any], deltas: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``data`` as it should be stored, given the run's ``(source, text)`` deltas so far (see the module doc)."""
    if type_ == "leg.done":
        return _compact_leg(data if "source" in data else {"source": source, **data}, streamed_text(deltas)[0])
    if type_ != "pty.exit" and type_ != "run.done":
        return data
    streamed, output = streamed_text(deltas)
    data = _compact_output(data, output)
    legs = data.get("legs")
    if isinstance(legs, list):
        data = {**data, "legs": [_compact_leg(leg, streamed) if isinstance(leg, dict) else leg for leg in legs]}
    return data


def _expand_leg(leg: dict[str, Any], streamed: dict[str, str]) -> tuple[dict[str, Any], bool]:
    if "text" in leg or "text_chars" not in leg:
        return leg, True
    text = streamed.get(leg.get("source", ""), "")
    chars = leg["text_chars"]
    leg = {key: value for key, value in leg.items() if key != "text_chars"}
    leg["text"] = text[-chars:] if isinstance(chars, int) and len(text) >= chars else text
    return leg, isinstance(chars, int) and len(text) >= chars


def _expand_output(data: dict[str, Any], output: str) -> tuple[dict[str, Any], bool]:
    if "output" in data or "output_chars" not in data:
        return data, True
    chars = data["output_chars"]
    data = {key: value for key, value in data.items() if key != "output_chars"}
    complete = isinstance(chars, int) and len(output) >= chars
    data["output"] = output[-chars:] if complete else output
    return data, complete


def needs_events(result: dict[str, Any]) -> bool:
    """True when ``result`` (a compacted ``run.done``) left some text in the events."""
    legs = result.get("legs")
    return "output_chars" in result or (isinstance(legs, list) and any(
        isinstance(leg, dict) and "text_chars" in leg for leg in legs))


def expand(result: dict[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    """``result`` with the texts it left in the events put back from the run's ``events`` (oldest first);
    ``"incomplete": true`` when the events no longer hold them all (retention, a ``store.gap``)."""
    streamed, output = streamed_text((e.source, e.data.get("text", "")) for e in events if e.type in TEXT_EVENT_TYPES)
    data, complete = _expand_output(dict(result), output)
    legs = data.get("legs")
    if isinstance(legs, list):
        expanded = []
        for leg in legs:
            if isinstance(leg, dict):
                leg, ok = _expand_leg(leg, streamed)
                complete = complete and ok
            expanded.append(leg)
        data["legs"] = expanded
    gaps = [e.data for e in events if e.type == "store.gap"]
    if gaps:
        data["store_gaps"] = gaps
    if not complete or gaps:
        data["incomplete"] = True
    return data


def _legs_from(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The legs of a run that never finished: one per source that started or streamed, with its text so far."""
    streamed, _ = streamed_text((e.source, e.data.get("text", "")) for e in events if e.type == "delta")
    ended = {e.source: LEG_ENDS[e.type] for e in events if e.type in LEG_ENDS}
    sources = [e.source for e in events if e.type == "leg.started"] + list(streamed)
    return [{"source": source, "status": ended.get(source, "interrupted"), "text": streamed.get(source, "")}
            for source in dict.fromkeys(sources)]


def snapshot(run_id: str, events: Sequence[Event]) -> dict[str, Any]:
    """The run's result from its stored events alone (oldest first, non-empty): its ``run.done`` with the texts
    put back, or ``interrupted`` when it never finished."""
    base = {"job_id": run_id, "run_id": run_id}
    started = events[0] if events[0].type == "run.started" else None
    kind = (started.data.get("kind") if started else None) or ("command" if any(
        e.type.startswith("pty.") for e in events) else "ask")
    title: dict[str, Any] = {key: started.data[key] for key in ("prompt", "command")
                             if started and key in started.data}
    done = next((e for e in reversed(events) if e.type == "run.done"), None)
    if done is None:
        result: dict[str, Any] = {**base, "kind": kind, **title, "status": "interrupted",
                                  "message": "the process running this job stopped before it finished"}
        if kind == "command":
            result["output"] = "".join(e.data.get("text", "") for e in events if e.type == "pty.output")
        else:  # each leg from its stored deltas (the process was killed: no run.done said what they had)
            result["legs"] = _legs_from(events)
        result = expand(result, events)
    else:
        result = expand({**base, "kind": kind, **title, **done.data}, events)
    if started is None:
        result["incomplete"] = True
    return result
