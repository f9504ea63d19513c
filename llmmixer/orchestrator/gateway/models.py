"""Virtual models: what a gateway client's ``model`` names, resolved to a mode, servers and their models.

- ``MODE/SERVER,SERVER[,...]``, where a SERVER may be written ``server=model``: ``race/claude,gpt``,
  ``hedge/gpt,gemini``, ``first-token/claude,gpt=gpt-5``. Every mode of :mod:`..modes` works.
- an alias from ``settings.aliases`` (``{"fast": "race/claude,gpt"}``), for clients that validate or mangle names;
- a plain model id (``claude-haiku-4-5``) or server name (``claude``): one leg on the server that lists it
  (:func:`..models.resolve_model_ids`; listings are cached for :data:`LISTING_TTL_S`).

Unknown names are ``not_found`` (a 404 in every dialect); a malformed spec is ``invalid_input``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...servers.core.errors import InvalidInputError, LLMMixerError, NotFoundError
from ..modes import MODES

if TYPE_CHECKING:
    from ..runs import Runs

__all__ = ["VirtualModel", "Listings", "parse_spec", "resolve", "listed_models", "LISTING_TTL_S"]

LISTING_TTL_S = 60.0


@dataclass(frozen=True)
class VirtualModel:
    name: str  # what the client asked for
    mode: str
    sources: list[str]
    model_for: dict[str, str] = field(default_factory=dict)


def parse_spec(name: str, spec: str, servers: list[str]) -> VirtualModel:
    """``MODE/SERVER[=model],...`` as a :class:`VirtualModel`.

    Raises:
        InvalidInputError: an unknown mode, an unknown server, a server twice, or no server.
    """
    mode, _, rest = spec.partition("/")
    if mode not in MODES:
        raise InvalidInputError(f"model {name!r}: {mode!r} is not a mode; modes: {', '.join(MODES)}")
    sources: list[str] = []
    model_for: dict[str, str] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        server, _, model = item.partition("=")
        server = server.strip()
        if server not in servers:
            raise InvalidInputError(f"model {name!r}: no server {server!r}; servers: {', '.join(servers)}")
        if server in sources:
            raise InvalidInputError(f"model {name!r}: {server} is named twice (one leg per server)")
        sources.append(server)
        if model.strip():
            model_for[server] = model.strip()
    if not sources:
        raise InvalidInputError(f"model {name!r}: name at least one server after {mode}/")
    return VirtualModel(name=name, mode=mode, sources=sources, model_for=model_for)


class Listings:
    """``list_all_models`` results, kept for a while: a plain name must not cost every server a call each time.
    One per app (``app.state.listings``)."""

    def __init__(self) -> None:
        self.at = -LISTING_TTL_S
        self.listings: list[dict[str, Any]] = []

    async def get(self, runs: Runs) -> list[dict[str, Any]]:
        from ..models import list_all_models

        if time.monotonic() - self.at > LISTING_TTL_S or any(item["error"] for item in self.listings):
            self.listings, self.at = await list_all_models(runs), time.monotonic()
        return self.listings


async def resolve(runs: Runs, listings: Listings, name: str) -> VirtualModel:
    """The virtual model ``name`` stands for (see the module docstring).

    Raises:
        NotFoundError: no alias, server or listed model has that name.
        InvalidInputError: a malformed ``MODE/...`` spec (or alias target).
    """
    name = name.strip().removeprefix("models/")
    servers = runs.config.model_sources
    aliases = runs.config.settings.aliases
    if name in aliases:
        return parse_spec(name, aliases[name], servers)
    if "/" in name:
        return parse_spec(name, name, servers)
    if not name:
        raise InvalidInputError("model is empty: name a model, a server or a MODE/SERVER,SERVER spec")
    if name in servers:
        return VirtualModel(name=name, mode="race", sources=[name])
    for listing in await listings.get(runs):
        for model in listing["models"]:
            if name == model["id"] or name in model["aliases"]:
                source = listing["source"]
                return VirtualModel(name=name, mode="race", sources=[source], model_for={source: name})
    raise NotFoundError(f"model {name!r} not found: use a model a server lists (GET /v1/models), an alias "
                        f"({', '.join(aliases) or 'none configured'}) or MODE/SERVER,SERVER")


async def listed_models(runs: Runs, listings: Listings) -> list[dict[str, Any]]:
    """``[{"id", "owned_by", "display_name"}]``: the aliases first, then every server's models (a server that
    cannot list says nothing rather than failing the listing)."""
    out = [{"id": alias, "owned_by": "llmmixer", "display_name": f"{alias} ({spec})"}
           for alias, spec in runs.config.settings.aliases.items()]
    try:
        found = await listings.get(runs)
    except LLMMixerError:
        found = []
    for listing in found:
        out.extend({"id": model["id"], "owned_by": listing["source"], "display_name": model["display_name"]}
                   for model in listing["models"])
    return out
