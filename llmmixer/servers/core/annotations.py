"""MCP tool annotations: what each LLMMixer tool does to the world, in the four hints hosts act on.

Hosts decide from these whether a call needs the user's approval: Codex runs a ``readOnlyHint`` tool at its
default approval policy and refuses any other one in ``codex exec`` ("MCP tool call requires approval, but approval
policy is never"); Claude Code and VS Code skip their confirmation for read-only tools too. So every tool says what it
does, and says it truthfully:

- :func:`reads` for a tool that changes nothing the user owns (asking models, reading a job, listing models);
  ``open_world`` when it talks to a service outside this machine (a vendor API);
- :func:`acts` for a tool that changes things (runs a command, types into a terminal, lets an agent edit a
  repository); ``destructive`` unless its only effect is additive or a stop of work it started itself.
"""

from __future__ import annotations

from mcp_types import ToolAnnotations

__all__ = ["DEFAULTS", "reads", "acts"]


# The spec's defaults. A hint equal to its default is left out: every host's turn pays for each property, and the
# meaning is the same (readOnlyHint is always sent, since it is the one hosts decide approval on).
DEFAULTS = {"destructive_hint": True, "idempotent_hint": False, "open_world_hint": True}


def _hints(title: str, read_only: bool, **hints: bool) -> ToolAnnotations:
    return ToolAnnotations(title=title, read_only_hint=read_only,
                           **{name: value for name, value in hints.items() if value != DEFAULTS[name]})


def reads(title: str, *, open_world: bool, idempotent: bool = False) -> ToolAnnotations:
    """A tool that does not modify its environment (``readOnlyHint: true``; destructiveHint does not apply)."""
    return _hints(title, True, idempotent_hint=idempotent, open_world_hint=open_world)


def acts(title: str, *, destructive: bool, open_world: bool, idempotent: bool = False) -> ToolAnnotations:
    """A tool that modifies its environment (``readOnlyHint: false``)."""
    return _hints(title, False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=open_world)
