"""Models by id: what each model server lists, their aliases, and which server serves a model a user names.

Each adapter lists its vendor's models (``list_models``) and says which one it uses by default. Aliases are:

- the server's name for its default model (``claude`` -> ``claude-haiku-4-5``);
- the undated id of a dated snapshot (``claude-haiku-4-5`` for ``claude-haiku-4-5-20251001``,
  ``gpt-5`` for ``gpt-5-2025-08-07``), which the vendors accept as well.

``-m/--model ID`` finds the server listing ``ID`` (or an alias of it) and runs that model there. It reads the
listings from :mod:`.model_cache` (the manifests plus each server's last listing), so it starts no server to
decide: an unknown id is an error at once, and a model whose server has no key names the variable to set. Only a
server that has never been listed is asked, and only when the id is not found elsewhere.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..servers.core.errors import AuthError, InvalidInputError, LLMMixerError, ServerError
from ..servers.core.results import result_payload

if TYPE_CHECKING:
    from .runs import Runs

__all__ = ["list_all_models", "resolve_model_ids", "undated"]

_DATED = re.compile(r"^(?P<family>.+?)-(\d{8}|\d{4}-\d{2}-\d{2})$")


def undated(model: str) -> str | None:
    """``claude-haiku-4-5`` for ``claude-haiku-4-5-20251001``; None for an id without a date."""
    match = _DATED.match(model.removeprefix("models/"))
    return match.group("family") if match else None


async def _server_models(runs: Runs, source: str) -> dict[str, Any]:
    """``{"source", "default_model", "models": [{"id", "display_name", "aliases", "default"}], "error"}``."""
    from ..servers.core import pricing

    out: dict[str, Any] = {"source": source, "default_model": None, "models": [], "error": None}
    try:
        result = await runs.pool.call(source, "list_models", {})
    except LLMMixerError as error:
        out["error"] = error.to_dict()["error"]
        return out
    payload = result_payload(result)
    if result.is_error:
        failure = payload.get("error")
        out["error"] = failure if isinstance(failure, dict) else ServerError("list_models failed").to_dict()["error"]
    default = payload.get("default_model") or runs.pool.default_model(source)
    out["default_model"] = default
    prices = runs.config.settings.prices or None
    items = [item for item in payload.get("models") or [] if isinstance(item, dict) and item.get("id")]
    ids = list(dict.fromkeys(str(item["id"]).removeprefix("models/") for item in items))
    names = {str(item["id"]).removeprefix("models/"): item.get("display_name") for item in items}
    # The default is the listed id itself, else the dated snapshot it stands for.
    default_id = default if default in ids else next((i for i in ids if default and undated(i) == default), None)
    for model_id in ids:
        aliases = [a for a in (undated(model_id),) if a and a not in ids]
        is_default = model_id == default_id
        if is_default:
            aliases.insert(0, source)
        price = pricing.price_per_million(model_id, prices)
        out["models"].append({"id": model_id, "display_name": names.get(model_id) or model_id,
                              "aliases": aliases, "default": is_default,
                              "price_per_million": list(price) if price else None})
    if default and not any(m["default"] for m in out["models"]):
        # The vendor did not list the default model (a local server, a restricted key): still name it.
        price = pricing.price_per_million(default, prices)
        out["models"].insert(0, {"id": default, "display_name": default, "aliases": [source], "default": True,
                                 "price_per_million": list(price) if price else None})
    return out


async def list_all_models(runs: Runs, sources: list[str] | None = None) -> list[dict[str, Any]]:
    """Every model server's models (or those of ``sources``), asked now, side by side (servers that fail say why in
    ``error``); what they list is remembered for :func:`.model_cache.cached_listings`."""
    import anyio

    from .model_cache import remember

    sources = runs.config.model_sources if sources is None else sources
    found: dict[str, dict[str, Any]] = {}

    async def one(source: str) -> None:
        found[source] = await _server_models(runs, source)

    async with anyio.create_task_group() as tg:
        for source in sources:
            tg.start_soon(one, source)
    listings = [found[source] for source in sources]
    remember(runs.config, listings)
    return listings


def _find(listings: list[dict[str, Any]], name: str) -> tuple[str, str] | None:
    for listing in listings:
        for model in listing["models"]:
            if name == model["id"] or name in model["aliases"]:
                return listing["source"], model["id"] if name == listing["source"] else name
    return None


async def resolve_model_ids(runs: Runs, wanted: list[str]) -> list[tuple[str, str]]:
    """``[(source, model id)]`` for model ids or aliases, each on the server that lists it (see the module doc).

    Raises:
        InvalidInputError: a model no server lists.
        AuthError: the model's server has no API key (the message names the variable).
    """
    from .model_cache import cached_listings, missing_key

    listings = cached_listings(runs.config)
    if any(_find(listings, name) is None for name in wanted):
        never_listed = [listing["source"] for listing in listings if listing["listed_at"] is None]
        if never_listed:
            live = {listing["source"]: listing for listing in await list_all_models(runs, never_listed)}
            listings = [live.get(listing["source"], listing) for listing in listings]
    chosen: list[tuple[str, str]] = []
    for name in wanted:
        hit = _find(listings, name)
        if hit is None:
            known = ", ".join(m["id"] for listing in listings for m in listing["models"][:4])
            failed = [listing["source"] for listing in listings if listing["error"]]
            hint = f" ({', '.join(failed)} could not list models)" if failed else ""
            raise InvalidInputError(f"unknown model {name!r}{hint}; `llmmixer models` lists them, e.g. {known}")
        source, model = hit  # two models of one server: a leg each (legs.py)
        variable = missing_key(runs.config.server_for(source))
        if variable is not None:
            raise AuthError(f"-m {name}: the {source} server has no API key; set {variable}")
        chosen.append((source, model))
    return chosen
