"""Drive a program in a real terminal: a tmux server of the test's own (its own socket), one window, keys in, screen out."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

__all__ = ["Tmux", "needs_tmux"]

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Tmux:
    """``with Tmux(tmp_path, env, cols=120, rows=40) as term: term.run("llmmixer ask hi"); term.wait_for("done")``."""

    def __init__(self, workdir: Path, env: dict[str, str], *, cols: int = 120, rows: int = 40) -> None:
        self.socket = str(workdir / f"tmux-{uuid.uuid4().hex[:8]}")
        self.env = env
        self.cols, self.rows = cols, rows

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True, text=True,
                              env=self.env).stdout

    def __enter__(self) -> Tmux:
        self._tmux("-f", "/dev/null", "new-session", "-d", "-x", str(self.cols), "-y", str(self.rows), "-s", "t",
                   "bash --norc --noprofile")
        self._tmux("set-option", "-g", "history-limit", "5000")
        self.send_line("PS1='sh''$ '")  # split, so the echo of this line is not the prompt it waits for
        self.wait_for("sh$ ")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, env=self.env)

    def run(self, command: list[str]) -> None:
        """Type the command, then a marker that prints its exit code when it ends."""
        self.send_line(f"{shlex.join(command)}; echo EXIT=$?")

    def wait_exit(self, timeout_s: float = 60.0) -> tuple[int, str]:
        """Wait for the command started by :meth:`run` to end; its exit code and the screen."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            found = re.search(r"^EXIT=(\d+)$", screen, re.MULTILINE)
            if found:
                return int(found.group(1)), screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the command did not end after {timeout_s} s:\n{screen}")
            time.sleep(0.05)

    def send_line(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self, *, history: bool = True) -> str:
        """What the terminal shows, with the scrollback above it when ``history``."""
        return self._tmux("capture-pane", "-p", "-J", "-N", "-t", "t", *(["-S", "-"] if history else []))

    def wait_for(self, text: str, timeout_s: float = 60.0, *, after: int = 0) -> str:
        """Wait until ``text`` appears on screen (past the first ``after`` occurrences); return the screen.

        Polls the pane (tmux has no change notification); the bound is generous, so a loaded machine only waits
        longer."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if screen.count(text) > after:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen after {timeout_s} s:\n{screen}")
            time.sleep(0.05)
