"""The MCP registry's ``server.json`` for ``llmmixer mcp`` and each server, generated from the servers' manifests.

    python tools/server_json.py           # rewrite packaging/registry/*/server.json
    python tools/server_json.py --check   # exit 1 if any is stale (tests/test_server_json.py runs this)

Each entry installs the ``llmmixer`` package from PyPI and runs it with ``uvx`` over stdio: ``uvx llmmixer mcp`` for
the orchestrator, ``uvx llmmixer server NAME`` for each server. Key variables are secret inputs; the other
variables a server reads are optional ones. The version is the package's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from llmmixer.servers.core.manifest import ServerManifest, load_manifests

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "packaging" / "registry"
SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
NAMESPACE = "io.github.llmmixer"  # the namespace the project publishes under
MAX_DESCRIPTION = 100  # the registry's limit


def _version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _positional(*values: str) -> list[dict[str, Any]]:
    return [{"type": "positional", "value": value} for value in values]


def _variables(manifests: list[ServerManifest]) -> list[dict[str, Any]]:
    """Each server's key variable, secret; required where it is the only one (``llmmixer mcp`` needs any one)."""
    keys = [(var, m) for m in manifests for var in m.key_vars[:1]]
    return [{"name": var, "description": f"API key for {m.title}", "isSecret": True, "isRequired": len(keys) == 1,
             "format": "string"} for var, m in keys]


def _entry(name: str, title: str, description: str, arguments: list[str], manifests: list[ServerManifest],
           version: str) -> dict[str, Any]:
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(f"{name}: the registry allows {MAX_DESCRIPTION} characters of description")
    package: dict[str, Any] = {"registryType": "pypi", "identifier": "llmmixer", "version": version,
                               "runtimeHint": "uvx", "transport": {"type": "stdio"},
                               "packageArguments": _positional(*arguments)}
    variables = _variables(manifests)
    if variables:
        package["environmentVariables"] = variables
    return {"$schema": SCHEMA, "name": f"{NAMESPACE}/{name}", "title": title, "description": description,
            "version": version, "packages": [package]}


def render() -> dict[str, dict[str, Any]]:
    """Each server.json by its folder name."""
    manifests = [m for m in load_manifests() if m.module.startswith("llmmixer.servers.")]  # ours, not plugins
    models = [m for m in manifests if m.role == "model"]
    version = _version()
    out = {"llmmixer": _entry("llmmixer", "LLMMixer", "Ask Claude, GPT and Gemini together: race, hedge, fall "
                                                      "back, fan out; run shell commands.", ["mcp"], models, version)}
    for manifest in manifests:
        what = "generate and list_models" if manifest.role == "model" else "sandboxed shell commands in a terminal"
        name = manifest.script or f"llmmixer-{manifest.name}"
        out[name] = _entry(name, f"LLMMixer {manifest.title}",
                           f"{manifest.title} as an MCP server: {what}.", ["server", manifest.name], [manifest],
                           version)
    return out


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args()
    stale = []
    documents = render()
    for folder, document in documents.items():
        path = OUT / folder / "server.json"
        if not path.exists() or path.read_text() != _text(document):
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_text(document))
    extra = [p for p in OUT.glob("*/server.json") if p.parent.name not in documents] if OUT.exists() else []
    if args.check and (stale or extra):
        print(f"stale: {', '.join(stale + [str(p) for p in extra])}; run python tools/server_json.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
