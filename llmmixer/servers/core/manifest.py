"""What each server package says about itself, once: a data-only :class:`ServerManifest`, found through entry points.

Every server package (the three adapters, the PTY runner, and any plugin installed next to LLMMixer) has a
``manifest.py`` holding one ``MANIFEST`` and registers it in its distribution's metadata::

    [project.entry-points."llmmixer.servers"]
    claude = "llmmixer.servers.claude_adapter.manifest:MANIFEST"

The orchestrator's config (which servers to launch, which variables each may receive), ``llmmixer config
claude-desktop``, ``llmmixer demo``, the emulators and the dashboard (``/api/servers``) all read these manifests; none
of them names a vendor. This is simonw/llm's ``register_models`` hook without pluggy: even the bundled servers
register through the same entry-point group a plugin uses.

A manifest module imports nothing but this one, so reading every manifest never loads an SDK.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Literal

__all__ = ["ENTRY_POINT_GROUP", "EmulatorInfo", "Role", "ServerManifest", "load_manifests", "manifest_for",
           "model_manifests"]

ENTRY_POINT_GROUP = "llmmixer.servers"

Role = Literal["model", "runner"]

log = logging.getLogger("llmmixer.manifest")


@dataclass(frozen=True, slots=True)
class EmulatorInfo:
    """A wire-faithful fake of the vendor's API, for tests, the bench and ``llmmixer demo``."""

    name: str  # the vendor's name in the emulator's control API and its URL prefix (``/{name}``)
    module: str  # exposes ``routes(ctx: EmulatorContext) -> list[BaseRoute]``
    base_path: str  # the SDK's base URL under the emulator's root, e.g. ``/openai/v1``


@dataclass(frozen=True, slots=True)
class ServerManifest:
    """One server package's facts. Data only: no behaviour, no imports of the package itself."""

    name: str  # the server's name in config, events, the CLI and the dashboard: "claude"
    role: Role  # "model": a generate/list_models adapter; "runner": the PTY command runner
    module: str  # ``python -m module`` runs the server over stdio
    title: str  # for people: "Claude (Anthropic)"
    script: str | None = None  # its console script, if the distribution installs one
    vendor: str | None = None  # the name in its errors: "anthropic"
    # Its ``gen_ai.provider.name`` in OpenTelemetry's GenAI conventions, where that differs from ``vendor``.
    telemetry_provider: str | None = None
    key_vars: tuple[str, ...] = ()  # the API-key variables; the first is the one an error tells the user to set
    base_url_var: str | None = None  # the SDK's base-URL variable
    env_vars: tuple[str, ...] = ()  # other variables the server reads (its settings), passed through when set
    default_model: str | None = None
    emulator: EmulatorInfo | None = None
    order: int = 100  # position in the default model list and fallback order (lower first)

    @property
    def provider_name(self) -> str | None:
        """The ``gen_ai.provider.name`` of its spans and metrics."""
        return self.telemetry_provider or self.vendor

    @property
    def passthrough(self) -> tuple[str, ...]:
        """The variables the orchestrator may hand this server from its own environment (names only)."""
        url = (self.base_url_var,) if self.base_url_var else ()
        return (*self.key_vars, *url, *self.env_vars)

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``/api/servers``, ``/api/meta``): names of variables, never their values."""
        return {"name": self.name, "role": self.role, "title": self.title, "vendor": self.vendor,
                "key_var": self.key_vars[0] if self.key_vars else None, "default_model": self.default_model,
                "script": self.script}


@cache
def load_manifests() -> tuple[ServerManifest, ...]:
    """Every registered server's manifest, in ``order`` then name; a broken plugin is logged and skipped.

    Cached for the process: entry points are read from the installed distributions' metadata once. Tests that
    install a package at run time call ``load_manifests.cache_clear()``.
    """
    found: dict[str, ServerManifest] = {}
    from importlib.metadata import entry_points  # ~30 ms of imports: only when the registry is first read

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            manifest = point.load()
        except Exception:  # noqa: BLE001 - one broken plugin must not take the others down
            log.warning("cannot load server manifest %s = %s", point.name, point.value, exc_info=True)
            continue
        if not isinstance(manifest, ServerManifest):
            log.warning("entry point %s = %s is not a ServerManifest; skipped", point.name, point.value)
            continue
        if manifest.name in found:
            log.warning("two server manifests named %r; keeping %s", manifest.name, found[manifest.name].module)
            continue
        found[manifest.name] = manifest
    return tuple(sorted(found.values(), key=lambda m: (m.order, m.name)))


def model_manifests() -> tuple[ServerManifest, ...]:
    """The model adapters, in their default order."""
    return tuple(m for m in load_manifests() if m.role == "model")


def manifest_for(source: str) -> ServerManifest | None:
    """The manifest of the server named ``source``, if one is registered."""
    return next((m for m in load_manifests() if m.name == source), None)
