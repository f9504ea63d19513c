"""``GET /api/meta``: the lists the dashboard needs, from their one definition, so it never keeps a copy.

- ``modes``: :data:`llmmixer.orchestrator.modes.MODE_HELP`, in order, with the default;
- ``event_types``: :data:`llmmixer.servers.core.events.EVENT_TYPES` (an ``EventSource`` silently drops a named event
  it has no listener for, so the dashboard listens to exactly these);
- ``servers``: every registered server's manifest (names of variables, never their values).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...servers.core.events import EVENT_TYPE_ORDER, LEG_ENDS, TIMELINE_TYPES
from ...servers.core.manifest import ServerManifest, load_manifests, manifest_for
from ..modes import DEFAULT_MODE, MODE_HELP

__all__ = ["meta", "get_meta", "server_facts"]


def meta() -> dict[str, Any]:
    return {
        "modes": [{"name": name, "help": text} for name, text in MODE_HELP.items()],
        "default_mode": DEFAULT_MODE,
        "event_types": list(EVENT_TYPE_ORDER),
        "timeline_types": sorted(TIMELINE_TYPES),
        "leg_ends": dict(LEG_ENDS),
        "servers": [manifest.to_dict() for manifest in load_manifests()],
    }


def server_facts(source: str) -> dict[str, Any]:
    """What the manifest of ``source`` says (role, title, vendor...); a server no manifest knows is a model."""
    manifest = manifest_for(source) or ServerManifest(name=source, role="model", module="", title=source)
    facts = manifest.to_dict()
    facts.pop("name")
    return facts


async def get_meta(request: Request) -> JSONResponse:
    return JSONResponse(meta())
