"""``llmmixer chat``: an interactive loop over one conversation, with the same live panels as ``ask``.

Each line typed is one ask in the conversation (the first starts it, unless ``-c``/``--cid`` continues one); the
models see the thread so far. Ctrl-C while an answer streams stops that answer (every leg is cancelled, the text
stays on screen) and the chat goes on; ``exit``, ``quit``, end of input (Ctrl-D) or Ctrl-C at the prompt leaves.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from ..servers.core.errors import LLMMixerError
from .asking import AskOptions
from .ctrl_c import read_line
from .live import follow_ask

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .remote import RemoteRuns
    from .runs import Runs

__all__ = ["run_chat"]

EXIT_WORDS = {"exit", "quit", ":q"}


def _read_line(prompt: str) -> str | None:
    try:
        if sys.stdin.isatty():
            return input(prompt)
        line = sys.stdin.readline()
        return None if line == "" else line.rstrip("\n")
    except EOFError:
        return None


async def run_chat(runs: Runs | RemoteRuns, options: AskOptions,
                   start: Callable[[str, AskOptions], Awaitable[str]]) -> int:
    """Loop until the user leaves; returns the exit code (0, or 1 when the last answer failed). ``start`` starts
    one ask (in this process, or on the resident service)."""
    interactive = sys.stdin.isatty()
    if interactive:
        sys.stdout.write("Chatting: type a message; Ctrl-C stops an answer; 'exit', Ctrl-D or Ctrl-C here leaves.\n")
    code = 0
    while True:
        line = await read_line("> " if interactive else "", _read_line)
        if line is None:
            if interactive:
                sys.stdout.write("\n")
            break
        if line.strip().lower() in EXIT_WORDS:
            break
        if not line.strip():
            continue
        try:
            run_id = await start(line, options)
        except LLMMixerError as error:
            sys.stderr.write(f"error: {error.kind.value}: {error.message}\n")
            code = 1
            continue
        final = await follow_ask(runs, run_id, live=True)
        code = 0 if final.get("status") == "done" or final.get("interrupted") else 1
        if final.get("conversation_id"):
            options = replace(options, fields={**options.fields, "continue_latest": False,
                                               "conversation_id": final["conversation_id"]})
    return code
