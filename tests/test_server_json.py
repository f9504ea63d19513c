"""The MCP registry entries (packaging/registry/*/server.json): current, valid against the registry's published
schema, and each one's command really starts its server.

The schema is the registry's own ``server.schema.json`` as the ``skillsaw`` package bundles it, byte for byte from
modelcontextprotocol/static (its SCHEMA-SOURCE.md says which revision), so the check needs no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import anyio
import jsonschema
import pytest
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = sorted((ROOT / "packaging" / "registry").glob("*/server.json"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _schema(document: dict) -> dict:
    version = document["$schema"].rstrip("/").split("/")[-2]  # .../schemas/2025-12-11/server.schema.json
    folder = resources.files("skillsaw.schemas.mcp_registry") / f"v{version.replace('-', '_')}"
    return json.loads((folder / "server.schema.json").read_text())


def test_the_entries_are_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "server_json.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert {path.parent.name for path in ENTRIES} == {"llmmixer", "llmmixer-claude", "llmmixer-gpt",
                                                      "llmmixer-gemini", "llmmixer-pty"}


@pytest.mark.parametrize("path", ENTRIES, ids=lambda path: path.parent.name)
def test_each_entry_is_valid_for_the_registry(path: Path) -> None:
    document = json.loads(path.read_text())
    schema = _schema(document)
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    [package] = document["packages"]
    assert document["version"] == package["version"] == VERSION
    assert all(variable["isSecret"] for variable in package.get("environmentVariables", ())
               if variable["name"].endswith("_API_KEY"))


def test_a_broken_entry_is_refused() -> None:
    """The check can fail: the registry's limits are in the schema."""
    document = json.loads(ENTRIES[0].read_text())
    schema = _schema(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "description": "x" * 101}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "name": "no-namespace"}, schema)


@pytest.mark.e2e
@pytest.mark.parametrize("path", ENTRIES, ids=lambda path: path.parent.name)
def test_each_entry_starts_its_server(path: Path) -> None:
    """What ``uvx llmmixer ARGS`` runs (here: the installed ``llmmixer`` script with the entry's arguments) answers
    ``initialize`` and lists its tools."""
    [package] = json.loads(path.read_text())["packages"]
    arguments = [argument["value"] for argument in package["packageArguments"]]
    command = str(Path(sys.executable).with_name("llmmixer"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}

    async def tools() -> list[str]:
        with anyio.fail_after(120):
            async with Client(StdioServerParameters(command=command, args=arguments, env=env)) as client:
                return [tool.name for tool in (await client.list_tools()).tools]

    names = anyio.run(tools)
    expected = {"llmmixer": "ask", "llmmixer-pty": "run"}.get(path.parent.name, "generate")
    assert expected in names, names
