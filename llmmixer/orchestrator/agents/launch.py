"""Everything one leg needs before its CLI starts: its directory, its fresh HOME, its secrets, its command line.

A leg lives in ``<agents dir>/<run>/<agent>/``: ``work/`` is its git worktree, ``home/`` its HOME, ``tmp/`` its
TMPDIR. The runner runs the command with the leg directory as its working directory (its sandbox makes that
writable, and nothing else but the worktree's own git admin directory), and the command moves into ``work/``.

The environment goes to the runner as the ``env`` of its ``run`` call, and the CLI's API key as ``secrets``: set in
the CLI's environment, never on a command line, and redacted by the runner from everything it returns. Every event
text is redacted here too (:class:`Redactor`), in case a runner without that duty is configured.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ...servers.core.workspace import agents_dir
from .base import AgentCLI
from .spec import AgentSpec

__all__ = ["LegLayout", "Redactor", "agents_dir", "ignore_agents_dir", "endpoint_for", "secrets_for", "prepare_home", "leg_environment",
           "shell_command", "LEG_MARKER"]

LEG_MARKER = "LLMMIXER_AGENT_LEG"  # set in every leg's environment: finds its processes, wherever they went


@dataclass(frozen=True)
class LegLayout:
    root: Path
    leg_id: str

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"


def ignore_agents_dir(root: Path) -> None:
    """Make ``root`` (the agents' directory) and a ``.gitignore`` in it that ignores everything there, itself
    included: where ``LLMMIXER_AGENTS_DIR`` lies inside the user's repository, ``git status`` stays clean during and
    after a run, and no leg's files reach a snapshot (``--base worktree``)."""
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("# llmmixer's agent legs: never part of the repository\n*\n", encoding="utf-8")


class Redactor:
    """Replaces every secret value in a text with ``[redacted]``."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._values = sorted({v for v in secrets.values() if len(v) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[redacted]")
        return text


def endpoint_for(adapter: AgentCLI, spec: AgentSpec, environ: dict[str, str] | None = None) -> str | None:
    """The agent's endpoint: its config ``env``, else the orchestrator's own variable, else the vendor default."""
    environ = dict(os.environ) if environ is None else environ
    return spec.env.get(adapter.base_url_var) or environ.get(adapter.base_url_var) or None


def secrets_for(adapter: AgentCLI, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The first of the CLI's key variables that is set, by name."""
    environ = dict(os.environ) if environ is None else environ
    for name in adapter.key_vars:
        if environ.get(name):
            return {name: environ[name]}
    return {}


def prepare_home(adapter: AgentCLI, spec: AgentSpec, layout: LegLayout, *, base_url: str | None) -> None:
    """Seed the fresh HOME with the CLI's config files (endpoint, no first-run prompts, no telemetry)."""
    home = layout.home
    home.mkdir(parents=True, exist_ok=True)
    (layout.root / "tmp").mkdir(parents=True, exist_ok=True)
    for relative, content in adapter.home_files(home, base_url=base_url, model=spec.model).items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def leg_environment(adapter: AgentCLI, spec: AgentSpec, layout: LegLayout, *, base_url: str | None,
                    binary: str) -> dict[str, str]:
    """The CLI's environment, secrets aside: its HOME and XDG dirs, PATH with its own directory first, the leg
    marker, the adapter's switches and the config's ``env``."""
    home = layout.home
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state"),
            "TMPDIR": str(layout.root / "tmp"), LEG_MARKER: layout.leg_id,
            "PATH": os.pathsep.join([os.path.dirname(binary), os.environ.get("PATH", "/usr/bin:/bin")]),
            **adapter.environment(home, base_url=base_url), **spec.env}


def shell_command(adapter: AgentCLI, spec: AgentSpec, layout: LegLayout, *, binary: str, task: str,
                  resume: str | None = None) -> str:
    """The bash command the runner runs: ``exec`` the CLI, in its structured mode, in the worktree (``resume``:
    continuing that session of the CLI's)."""
    argv = [binary, *adapter.argv(task, model=spec.model, extra=spec.args, resume=resume)]
    return f"cd {shlex.quote(str(layout.work))} && exec {shlex.join(argv)}"
