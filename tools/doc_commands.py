"""The shell commands the docs show, read from the fenced ``sh``/``bash``/``console`` blocks of ``docs/*.md``.

Each command is one line of a block, its ``\\`` continuations joined and its comment dropped. A command that cannot
run on the bundled emulators (it installs something, or needs a real vendor key or a real host app) says so in the
docs with a comment that starts with ``needs``: ``# needs a real key`` at the end of its line covers that line; on a
line of its own it covers the rest of the block. tests/test_docs_commands.py runs every other command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_BLOCKS = frozenset({"sh", "bash", "console", "shell"})
NEEDS = re.compile(r"^needs\s+(?P<what>.+)$")
GENERATED_PAGES = frozenset({"cli-reference.md"})


@dataclass(frozen=True)
class DocCommand:
    page: str
    line: int  # 1-based, where the command starts
    text: str  # the command without its comment
    needs: str | None  # what it needs that the tests do not have, from its ``# needs …`` comment

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)``: a ``#`` that starts a word outside quotes starts the comment."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def page_commands(page: Path) -> list[DocCommand]:
    """Every command of ``page``'s shell blocks, in order (a ``$ `` prompt is dropped)."""
    found: list[DocCommand] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    in_shell = in_block = False
    block_needs: str | None = None
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i]
        i += 1
        if line.startswith("```"):
            in_shell = not in_block and line[3:].strip() in SHELL_BLOCKS
            in_block, block_needs = not in_block, None
            continue
        if not in_shell:
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        command, comment = split_comment(line.strip().removeprefix("$ "))
        needs = NEEDS.match(comment)
        if not command:
            block_needs = needs["what"] if needs else block_needs
        else:
            found.append(DocCommand(page.name, start, command, needs["what"] if needs else block_needs))
    return found


COMMAND_LIKE = re.compile(r"^\s*(\$ |llmmixer(-[a-z]+)?(\s|$))")


def unshown_commands(page: Path) -> list[str]:
    """Lines that look like commands (``llmmixer …``, ``$ …``) in a block that is not a shell block, where the tests
    would not see them: ``page:line: text``."""
    found, in_block, in_shell = [], False, False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_shell = not in_block and line[3:].strip() in SHELL_BLOCKS
            in_block = not in_block
        elif in_block and not in_shell and COMMAND_LIKE.match(line):
            found.append(f"{page.name}:{number}: {line.strip()}")
    return found


def doc_pages() -> list[Path]:
    """docs/*.md but the generated ones (README.md is docs/index.md)."""
    return [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in GENERATED_PAGES]
