"""issue 27, item 7: the README is a short front page generated from docs/index.md, the CLI reference is generated
from --help and current, the site builds with --strict, and the commands the docs show exist with the options shown."""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import doc_commands  # noqa: E402
import docs as docs_tool  # noqa: E402


def test_the_readme_is_a_front_page_of_at_most_200_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    text = "\n".join(lines)
    for part in ("## Install", "## The demo", "## Three everyday recipes", "## Read more"):
        assert part in text


def test_generated_pages_are_current() -> None:
    """README.md from docs/index.md, docs/cli-reference.md from every command's --help."""
    stale = [name for name, make in docs_tool.GENERATED.items()
             if make() != (ROOT / name).read_text(encoding="utf-8")]
    assert not stale, f"stale: {stale}; run `python tools/docs.py` and commit the result"


def test_the_cli_reference_has_every_command() -> None:
    text = (ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    for command in ("ask", "chat", "serve", "mcp", "config claude-desktop", "logs show", "demo", "emulators",
                    "servers", "agent", "run", "models"):
        assert f"## llmmixer {command}\n" in text, command


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="needs the docs extra (mkdocs)")
def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "cli-reference" / "index.html").exists()


def test_every_doc_page_is_in_the_site_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    missing = [page for page in pages if f": {page}" not in nav]
    assert not missing, f"add these pages to mkdocs.yml's nav: {missing}"


# -- every `llmmixer` command line in the docs names a real command with real options ----------------------------

def _doc_commands() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *doc_commands.doc_pages()]:
        for command in doc_commands.page_commands(page):
            # A command may follow an assignment or a pipe: `echo hi | llmmixer ask -`, `X=1 llmmixer serve`.
            for part in re.split(r"\||&&|;", command.text):
                words = part.strip().split()
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words = words[1:]
                if words and words[0] in ("llmmixer", ".venv/bin/llmmixer"):
                    found.append((page.name, " ".join(words)))
    return found


def _options_of(path: list[str]) -> tuple[set[str], bool]:
    """The option names a command path takes, and whether it passes its arguments on unparsed."""
    import typer

    from llmmixer.orchestrator.cli import app

    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.get_command(command.context_class(command), name)
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    return options, bool(command.context_settings.get("ignore_unknown_options"))


@functools.cache
def _help_options(path: tuple[str, ...]) -> set[str]:
    """The options a command that passes its arguments on shows in its ``--help`` (one run per command path)."""
    help_text = subprocess.run([sys.executable, "-m", "llmmixer", *path, "--help"], capture_output=True,
                               text=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", help_text))


@pytest.mark.parametrize(("page", "line"), _doc_commands())
def test_each_command_shown_in_the_docs_exists_with_its_options(page: str, line: str) -> None:
    words = shlex.split(line.replace("…", ""), comments=True)[1:]
    import typer

    from llmmixer.orchestrator.cli import app

    group: Any = typer.main.get_command(app)
    path: list[str] = []
    while words and hasattr(group, "list_commands") and not words[0].startswith("-"):
        sub = group.get_command(group.context_class(group), words[0])
        if sub is None and path and group.get_command(group.context_class(group), "run") is not None:
            sub, name = group.get_command(group.context_class(group), "run"), "run"  # `agent TASK` is `agent run TASK`
        else:
            assert sub is not None, f"{page}: `{line}`: no command {words[0]!r}"
            name = words.pop(0)
        path.append(name)
        group = sub
    options, passthrough = _options_of(path)
    if passthrough:
        options = _help_options(tuple(path))
    for word in words:
        if word.startswith("-") and word != "-":
            name = word.split("=")[0]
            assert name in options, f"{page}: `{line}`: {' '.join(['llmmixer', *path])} has no option {name}"



def test_the_dashboard_screenshots_are_small_and_shown() -> None:
    """docs/img/dashboard-*.png (tools/dashboard_screenshots.py takes them): PNGs under 200 KB, each on the dashboard
    page."""
    import dashboard_screenshots

    page = (ROOT / "docs" / "dashboard.md").read_text(encoding="utf-8")
    shots = sorted((ROOT / "docs" / "img").glob("dashboard-*.png"))
    assert [shot.name for shot in shots] == ["dashboard-phone.png", "dashboard-race.png", "dashboard-spend.png"]
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size < dashboard_screenshots.MAX_BYTES, shot.name
        assert f"](img/{shot.name})" in page, shot.name
