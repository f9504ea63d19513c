"""The tool tables of docs/hosts.md, generated from the servers themselves: each tool's annotations, and what each
server's ``tools/list`` costs a host on every turn; and the tool list (and version) of the ``.mcpb`` bundle's
manifest (``packaging/mcpb/manifest.json``).

    python tools/tool_table.py           # rewrite both
    python tools/tool_table.py --check   # exit 1 if either is stale (tests/test_tool_table.py runs this)

Each server is started the way a host starts it (its console script over stdio, no keys) and asked for
``tools/list``; cost is the compact JSON of the result in bytes, and bytes / 4 (rounded up) as tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.annotations import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "hosts.md"
MANIFEST = ROOT / "packaging" / "mcpb" / "manifest.json"
START, END = "<!-- tool-table:start -->", "<!-- tool-table:end -->"
SERVERS = {"llmmixer mcp": ("llmmixer", ["mcp"]), "llmmixer-claude": ("llmmixer-claude", []),
           "llmmixer-gpt": ("llmmixer-gpt", []), "llmmixer-gemini": ("llmmixer-gemini", []),
           "llmmixer-pty": ("llmmixer-pty", [])}
HINTS = (("read_only_hint", "read-only"), ("destructive_hint", "destructive"), ("idempotent_hint", "idempotent"),
         ("open_world_hint", "open world"))


async def _tools(script: str, args: list[str]) -> list[Any]:
    command = str(Path(sys.executable).with_name(script))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    with anyio.fail_after(120):
        async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
            return list((await client.list_tools()).tools)


def _hint(annotations: Any, field: str) -> str:
    """A hint as a host reads it: unset means the spec's default; a read-only tool is never destructive."""
    value = getattr(annotations, field, None)
    if value is None:
        read_only = getattr(annotations, "read_only_hint", None) is True
        value = False if field == "destructive_hint" and read_only else DEFAULTS.get(field, False)
    return "yes" if value else "no"


def render() -> tuple[str, list[Any]]:
    """The Markdown between the markers, and the orchestrator's tools."""
    annotations = ["| server | tool | " + " | ".join(label for _, label in HINTS) + " |",
                   "|---|---|" + "---|" * len(HINTS)]
    costs = ["| server | tools | bytes | ≈ tokens |", "|---|---|---|---|"]
    orchestrator: list[Any] = []
    for name, (script, args) in SERVERS.items():
        tools = anyio.run(_tools, script, args)
        if name == "llmmixer mcp":
            orchestrator = tools
        for tool in tools:
            cells = [_hint(tool.annotations, field) for field, _ in HINTS]
            annotations.append(f"| `{name}` | `{tool.name}` | " + " | ".join(cells) + " |")
        text = json.dumps({"tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]},
                          ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode())
        costs.append(f"| `{name}` | {len(tools)} | {size:,} | {-(-len(text) // 4):,} |")
    return "\n".join(["", *annotations, "", *costs, ""]), orchestrator


def bundle_manifest(tools: list[Any]) -> str:
    """The bundle's manifest with the orchestrator's tools and the package's version."""
    from llmmixer.servers.core.mcp import package_version

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    manifest["version"] = package_version()
    manifest["tools"] = [{"name": t.name, "description": t.description} for t in tools]
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/hosts.md's tables are stale")
    args = parser.parse_args(argv)
    doc = DOC.read_text(encoding="utf-8")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    tables, tools = render()
    fresh = {DOC: f"{head}{START}\n{tables}\n{END}{tail}", MANIFEST: bundle_manifest(tools)}
    if args.check:
        stale = [path for path, text in fresh.items() if path.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path.relative_to(ROOT)}: stale; run python tools/tool_table.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in fresh.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
