"""Agents are configured like servers: an ``agents`` object in the config file, with defaults for the three CLIs.

```json
{"agents": {
   "claude-code": {"command": "claude", "args": ["--max-turns", "30"], "model": "claude-sonnet-4-6",
                   "env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4000"}, "timeout": 900},
   "codex-mini":  {"cli": "codex", "model": "gpt-5-mini"}
}}
```

An entry named after a CLI (``claude-code``, ``codex``, ``gemini-cli``) adjusts that CLI's defaults; any other name
needs ``cli`` to say which CLI it runs. ``env`` values are passed to the CLI as they are (endpoints, options); keys
come from the orchestrator's environment as secrets, never from here. A command is looked up on ``PATH``, then in
the checkout's ``.ci/node/node_modules/.bin`` (where ``.ci/run`` installs the pinned CLIs).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...servers.core.errors import InvalidInputError, NotFoundError
from .base import AgentCLI
from .claude_code import ClaudeCode
from .codex import Codex
from .gemini_cli import GeminiCLI

__all__ = ["CLIS", "AgentSpec", "agent_specs", "DEFAULT_TIMEOUT_S", "find_command"]

CLIS: dict[str, type[AgentCLI]] = {cls.name: cls for cls in (ClaudeCode, Codex, GeminiCLI)}
DEFAULT_TIMEOUT_S = 600.0
_CHECKOUT_BIN = Path(__file__).resolve().parents[3] / ".ci" / "node" / "node_modules" / ".bin"


@dataclass
class AgentSpec:
    name: str
    cli: str
    command: str
    args: list[str] = field(default_factory=list)
    model: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def adapter(self) -> AgentCLI:
        return CLIS[self.cli]()

    @classmethod
    def default(cls, cli: str) -> AgentSpec:
        return cls(name=cli, cli=cli, command=CLIS[cli].binary)

    @classmethod
    def from_json(cls, name: str, raw: Any) -> AgentSpec:
        if not isinstance(raw, dict):
            raise InvalidInputError(f"agents.{name} must be an object")
        unknown = set(raw) - {"cli", "command", "args", "model", "env", "timeout"}
        if unknown:
            raise InvalidInputError(f"agents.{name}: unknown field(s) {', '.join(sorted(unknown))}")
        cli = raw.get("cli") or name
        if cli not in CLIS:
            raise InvalidInputError(f"agents.{name}: `cli` must be one of {', '.join(CLIS)} (got {cli!r})")
        spec = cls.default(cli)
        spec.name = name
        command, args, model, env = raw.get("command"), raw.get("args", []), raw.get("model"), raw.get("env", {})
        if command is not None and (not isinstance(command, str) or not command):
            raise InvalidInputError(f"agents.{name}.command must be a non-empty string")
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            raise InvalidInputError(f"agents.{name}.args must be a list of strings")
        if model is not None and not isinstance(model, str):
            raise InvalidInputError(f"agents.{name}.model must be a string")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise InvalidInputError(f"agents.{name}.env must map names to strings")
        timeout = raw.get("timeout", DEFAULT_TIMEOUT_S)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidInputError(f"agents.{name}.timeout must be a positive number of seconds")
        spec.command, spec.args, spec.model, spec.env = command or spec.command, list(args), model, dict(env)
        spec.timeout_s = float(timeout)
        return spec


def agent_specs(raw: Any) -> dict[str, AgentSpec]:
    """The three defaults, adjusted and extended by the config file's ``agents`` object."""
    specs = {name: AgentSpec.default(name) for name in CLIS}
    if raw is None:
        return specs
    if not isinstance(raw, dict):
        raise InvalidInputError("agents must be an object mapping names to agent settings")
    for name, entry in raw.items():
        specs[name] = AgentSpec.from_json(name, entry)
    return specs


def find_command(spec: AgentSpec) -> str:
    """The absolute path of the agent's command.

    Raises:
        NotFoundError: the command is not installed; the message names the npm package.
    """
    if os.path.isabs(spec.command):
        if os.access(spec.command, os.X_OK):
            return spec.command
    else:
        search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), str(_CHECKOUT_BIN)) if p)
        found = shutil.which(spec.command, path=search)
        if found:
            return os.path.abspath(found)
    package = CLIS[spec.cli].npm_package
    raise NotFoundError(f"agent {spec.name!r} needs the `{spec.command}` command, which is not installed: "
                        f"npm install -g {package}")
