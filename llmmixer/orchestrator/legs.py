"""Leg names: how a run tells its legs apart when one server plays several of them.

A run's ``models`` is a list of leg names. A plain server name (``claude``) is one leg on that server with its
default model (or the run's ``model_for``). ``SERVER:MODEL`` (``gpt:gpt-5``) is a leg on that server with that model,
so ``gpt:gpt-5`` and ``gpt:gpt-5-mini`` race two models of one vendor. When a name would repeat, each copy gets
``#N`` (``claude#1``, ``claude#2``: best-of-N on one model). Events, results and the dashboard's columns carry the
leg name as ``source``; the server is what the name starts with.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["parse_leg", "name_legs", "server_of"]

_COPY = re.compile(r"#\d+$")


def parse_leg(name: str) -> tuple[str, str | None]:
    """``(server, model or None)`` of a leg name: ``gpt:gpt-5#2`` -> ``("gpt", "gpt-5")``; ``claude`` -> ``("claude",
    None)``. A model id may itself hold ``:`` (``llama3:8b``); the server is what comes before the first one."""
    name = _COPY.sub("", name.strip())
    server, sep, model = name.partition(":")
    return server.strip(), (model.strip() or None) if sep else None


def server_of(name: str) -> str:
    return parse_leg(name)[0]


def name_legs(specs: list[tuple[str, str | None]]) -> list[str]:
    """A unique name per ``(server, model)`` leg, in order: ``server`` or ``server:model``, then ``#N`` on repeats."""
    names = [f"{server}:{model}" if model else server for server, model in specs]
    repeats = Counter(names)
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        if repeats[name] > 1:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        out.append(name)
    return out
