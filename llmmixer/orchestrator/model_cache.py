"""Model lists without starting a server: each server's manifest, plus the last listing it gave, cached on disk.

``llmmixer models`` and ``-m MODEL`` used to start every adapter and ask each vendor for its models first. Now
they read :func:`cached_listings`: per configured model server, its last ``list_models`` answer from the cache
file (``<user cache dir>/llmmixer/models.json``), or, when it has never been listed, just the default model its
manifest (or its ``--model`` flag) names. Every live listing writes the cache (:func:`remember`): ``llmmixer models
--refresh``, the service's ``/api/models``, and ``llmmixer serve``, which lists its servers in the background once
they are warm.

An entry belongs to one endpoint: its key is the server's name plus what decides what it lists (its command, args,
URL and base-URL variable), so a server pointed at a local OpenAI-compatible endpoint is not answered from the
listing of api.openai.com.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..servers.core.manifest import manifest_for

if TYPE_CHECKING:
    from .config import Config, ServerSpec

__all__ = ["cache_path", "cached_listings", "missing_key", "remember"]


def cache_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("llmmixer")) / "models.json"


def _key(spec: ServerSpec) -> str:
    manifest = manifest_for(spec.source)
    base_var = manifest.base_url_var if manifest else None
    base_url = spec.env.get(base_var) or os.environ.get(base_var) if base_var else None
    identity = json.dumps([spec.source, spec.command, spec.args, spec.url, spec.inprocess, base_url])
    return f"{spec.name}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: every server falls back to its manifest
    return data if isinstance(data, dict) else {}


def _default_model(spec: ServerSpec) -> str | None:
    """The model the server uses without a ``model`` argument: its ``--model`` flag, else its manifest's."""
    if "--model" in spec.args[:-1]:
        return spec.args[spec.args.index("--model") + 1]
    manifest = manifest_for(spec.source)
    return manifest.default_model if manifest else None


def _from_manifest(spec: ServerSpec) -> dict[str, Any]:
    from ..servers.core import pricing

    default = _default_model(spec)
    models = []
    if default:
        price = pricing.price_per_million(default)
        models.append({"id": default, "display_name": default, "aliases": [spec.source], "default": True,
                       "price_per_million": list(price) if price else None})
    return {"source": spec.source, "default_model": default, "models": models, "error": None, "listed_at": None}


def cached_listings(config: Config) -> list[dict[str, Any]]:
    """Each configured model server's listing (the ``list_all_models`` shape plus ``listed_at``, None when it comes
    from the manifest alone), read from disk: no server is started."""
    cache = _read()
    out = []
    for source in config.model_sources:
        spec = config.server_for(source)
        entry = cache.get(_key(spec))
        if isinstance(entry, dict) and isinstance(entry.get("models"), list) and entry.get("source") == source:
            out.append({**entry, "error": None})
        else:
            out.append(_from_manifest(spec))
    return out


def remember(config: Config, listings: list[dict[str, Any]]) -> None:
    """Store the listings that succeeded (a server that failed to list keeps its last good entry)."""
    cache = _read()
    now = time.time()
    for listing in listings:
        if listing.get("error") or not listing.get("models"):
            continue
        spec = config.server_for(listing["source"])
        cache[_key(spec)] = {**{k: v for k, v in listing.items() if k != "error"}, "listed_at": now}
    path = cache_path()
    with contextlib.suppress(OSError):  # a read-only cache dir costs the next command a live listing, nothing more
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)


def missing_key(spec: ServerSpec) -> str | None:
    """The key variable a launched server playing ``spec.source`` would lack, or None (it has one, or it is remote)."""
    manifest = manifest_for(spec.source)
    if spec.url or manifest is None or not manifest.key_vars:
        return None
    environment = {**os.environ, **spec.env}  # what the child is given (its passthrough), or in process, ours
    if any(environment.get(name) for name in manifest.key_vars):
        return None
    return manifest.key_vars[0]
