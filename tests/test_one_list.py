"""One list per concept (issue 17): the modes live in ``orchestrator/modes.py`` and the event types in
``servers/core/events.py``; every other face derives from them. In the style of httpx's test_exported_members:

- each face (CLI help, HTTP and MCP input schemas, ``/api/meta`` for the dashboard, the mixer's strategies) lists
  exactly the defined members, so a new mode or event type added to its one list shows up everywhere;
- no source file (.py, .js, .html) outside the defining module holds a *copy*: a collection literal (tuple, list,
  set, dict keys, ``Literal[...]``, a JS array), a list-like string (``"race | all"``, ``"race, hedge"``) or an
  HTML ``<option value=...>`` naming members. Using one member by name (``emit("leg.done", ...)``,
  ``case "race.won":``) is a use, not a copy, and is fine.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmmixer.orchestrator.modes import MODES
from llmmixer.servers.core.events import EVENT_TYPE_ORDER, EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("llmmixer", "bench")
CONCEPTS: dict[str, tuple[frozenset[str], str]] = {
    "mode": (frozenset(MODES), "llmmixer/orchestrator/modes.py"),
    "event type": (EVENT_TYPES, "llmmixer/servers/core/events.py"),
}


def _sources(*suffixes: str) -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in suffixes and "node_modules" not in path.parts:
                yield path


def _strings(nodes: list[ast.expr | None]) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@functools.cache
def _list_pattern(members: frozenset[str]) -> re.Pattern[str]:
    names = "|".join(re.escape(m) for m in sorted(members, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])({names})\s*[|,/]\s*({names})(?![\w-])")


def _listed(text: str, members: frozenset[str]) -> bool:
    """Two members next to each other with list punctuation between them: ``a | b``, ``a, b``, ``a/b``."""
    return _list_pattern(members).search(text) is not None


def _python_copies(path: Path, members: frozenset[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        items: list[str] = []
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = _strings(list(node.elts))
        elif isinstance(node, ast.Dict):
            items = _strings(list(node.keys))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _listed(node.value, members):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:70]!r}")
            continue
        hits = [item for item in items if item in members]
        if len(set(hits)) >= 2:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {hits}")
    return found


def _web_copies(path: Path, members: frozenset[str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"\[([^\[\]]*)\]", text):  # JS array literals
        hits = [m for m in re.findall(r"[\"'`]([^\"'`]+)[\"'`]", match.group(1)) if m in members]
        if len(set(hits)) >= 2:
            found.append(f"{path.relative_to(ROOT)}: array {hits}")
    for match in re.finditer(r"<option[^>]*value=[\"']([^\"']+)[\"']", text):
        if match.group(1) in members:
            found.append(f"{path.relative_to(ROOT)}: <option value={match.group(1)!r}>")
    for match in re.finditer(r"[\"'`]([^\"'`\n]{3,200})[\"'`]", text):
        if _listed(match.group(1), members):
            found.append(f"{path.relative_to(ROOT)}: string {match.group(1)[:70]!r}")
    return found


@pytest.mark.parametrize("concept", list(CONCEPTS))
def test_no_copy_of_the_list_outside_its_module(concept: str) -> None:
    members, home = CONCEPTS[concept]
    copies = []
    for path in _sources(".py"):
        if path.relative_to(ROOT).as_posix() != home:
            copies += _python_copies(path, members)
    for path in _sources(".js", ".html"):
        copies += _web_copies(path, members)
    assert not copies, f"copies of the {concept} list (derive them from {home} instead):\n" + "\n".join(copies)


def test_the_drift_check_catches_a_copy(tmp_path: Path) -> None:
    """The detector itself: it must flag each kind of copy it promises to, and not a single use."""
    modes = frozenset(MODES)
    sample = tmp_path / "sample.py"
    sample.write_text(f'A = ("{MODES[0]}", "{MODES[1]}")\nB = {{"{MODES[0]}": 1, "{MODES[1]}": 2}}\n'
                      f'C = "one of {MODES[0]} | {MODES[1]}"\nD = "{MODES[0]}"\n', encoding="utf-8")
    flagged = [line.split(":")[1] for line in _python_copies_at(sample, modes)]
    assert flagged == ["1", "2", "3"]
    page = tmp_path / "page.html"
    page.write_text(f'<select><option value="{MODES[0]}">x</option></select>', encoding="utf-8")
    script = tmp_path / "app.js"
    script.write_text(f'const T = ["{EVENT_TYPE_ORDER[0]}", "{EVENT_TYPE_ORDER[1]}"];\n'
                      f'switch (t) {{ case "{EVENT_TYPE_ORDER[0]}": break; }}\n', encoding="utf-8")
    assert len(_web_copies_at(page, modes)) == 1 and len(_web_copies_at(script, EVENT_TYPES)) == 1


def _python_copies_at(path: Path, members: frozenset[str]) -> list[str]:
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return _python_copies(path, members)
    finally:
        ROOT = saved


def _web_copies_at(path: Path, members: frozenset[str]) -> list[str]:
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return _web_copies(path, members)
    finally:
        ROOT = saved


# -- every face lists exactly the defined members ---------------------------------------------------------------------

def test_the_http_ask_schema_enumerates_the_modes() -> None:
    from llmmixer.orchestrator.requests import AskRequest

    mode = AskRequest.model_json_schema()["properties"]["mode"]
    assert {"type": "string", "enum": list(MODES)} in mode["anyOf"]


@pytest.mark.anyio
async def test_the_mcp_ask_tool_enumerates_and_describes_the_modes() -> None:
    from llmmixer.orchestrator.mcp_server import build_server

    server = build_server(None)  # type: ignore[arg-type]  # listing tools never touches the run service
    tools = {tool.name: tool for tool in await server.list_tools()}
    ask = tools["ask"]
    assert ask.input_schema["properties"]["mode"]["enum"] == list(MODES)
    assert all(mode in (ask.description or "") for mode in MODES)


def test_the_cli_help_lists_the_modes() -> None:
    from typer.testing import CliRunner

    from llmmixer.orchestrator.cli import app

    help_text = CliRunner().invoke(app, ["ask", "--help"]).output
    assert " | ".join(MODES) in " ".join(help_text.split())


def test_api_meta_serves_both_lists_to_the_dashboard() -> None:
    from llmmixer.orchestrator.web.meta import meta

    served = meta()
    assert [m["name"] for m in served["modes"]] == list(MODES) and served["default_mode"] == MODES[0]
    assert served["event_types"] == list(EVENT_TYPE_ORDER)


def test_every_mode_has_its_strategy() -> None:
    from llmmixer.orchestrator.strategies import STRATEGIES, registered_modes

    assert registered_modes() == list(MODES)
    assert set(STRATEGIES) == set(MODES)  # and no strategy for a mode that is not one
