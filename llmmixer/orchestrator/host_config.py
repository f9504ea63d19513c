"""``llmmixer config HOST``: LLMMixer's servers in each MCP host's own config file, printed or merged in.

Each host has its own file, shape, key handling and tool timeout; this module is the one place that knows them:

| host | file (user scope; project scope) | servers under | keys, without ``--with-env`` | tool timeout |
|---|---|---|---|---|
| ``claude-desktop`` | ``claude_desktop_config.json`` | ``mcpServers`` | ``${NAME}`` to replace by hand | fixed, about 60 s |
| ``claude-code`` | ``~/.claude.json``; ``.mcp.json`` | ``mcpServers`` | inherited from Claude Code's environment | ``timeout`` (ms) |
| ``codex`` | ``$CODEX_HOME/config.toml`` | ``[mcp_servers.NAME]`` | ``env_vars`` (forwarded by name) | ``tool_timeout_sec`` |
| ``gemini-cli`` | ``~/.gemini/settings.json``; ``.gemini/settings.json`` | ``mcpServers`` | ``env`` ``${NAME}`` | ``timeout`` (ms) |
| ``cursor`` | ``~/.cursor/mcp.json``; ``.cursor/mcp.json`` | ``mcpServers`` | ``env`` ``${env:NAME}`` | fixed |
| ``vscode`` | the user's ``Code/User/mcp.json``; ``.vscode/mcp.json`` | ``servers`` | ``${input:…}`` password prompts | fixed |

Why the keys differ: Codex passes a server only ``HOME``, ``LANG``, ``PATH``, ``TERM`` (and what ``env_vars``
names), and Gemini CLI strips every ``*_API_KEY`` from the environment it passes on unless the server's ``env``
names it, so an inherited key never arrives there. With ``--with-env`` every host gets the values themselves.

Claude Code connects servers in the background and its first turn may run before ours is up ("still connecting"),
so its entries say ``alwaysLoad: true`` (connected before the first turn). It waits for them only up to
``MCP_CONNECT_TIMEOUT_MS`` (5 s by default), less than a cold ``llmmixer mcp`` takes on a loaded machine (the MCP
SDK's import alone is about a CPU-second), so the user config also sets that variable in its ``env`` (which Claude
Code applies to itself) to Claude Code's own connection timeout, 30 s; a value the user set is kept. Codex waits for
servers up to ``startup_timeout_sec`` (30 s here; its default 10 s is short for a first start); Gemini CLI waits by
itself.

The orchestrator's entry carries ``--max-wait-s``: the host's tool timeout less a margin, so a long run comes back
as a job before the host gives up on the call (and cancels the run).

``--write`` merges through :mod:`.config_files`: a backup first, every other server and setting kept, an env value
the user typed kept over a placeholder, and a second run changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import desktop_config
from .config_files import WriteOutcome, dump, write_merged
from .desktop_config import ORCHESTRATOR, ServerSpec, is_placeholder, servers

__all__ = ["CLAUDE_CODE_CONNECT_WAIT_MS", "HOSTS", "HostFormat", "host_entries", "main", "TIMEOUT_MARGIN_S"]

TIMEOUT_MARGIN_S = 15.0  # between the longest wait and the host's timeout: the result still has to reach the host
FIXED_TIMEOUT_S = 60.0  # hosts whose tool timeout is not configurable (Claude Desktop, Cursor, VS Code)
CLI_TIMEOUT_S = 300.0  # what we configure where the host takes a per-server tool timeout
CODEX_STARTUP_S = 30  # Codex's default (10 s) is short for a first start that imports three vendor SDKs
# How long Claude Code's first turn waits for an alwaysLoad server: its own connection timeout (MCP_TIMEOUT's default)
CLAUDE_CODE_CONNECT_WAIT_MS = 30_000

KeyStyle = Literal["placeholder", "inherit", "forward", "dollar", "env-colon", "input"]


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def _vscode_user_dir(environ: Mapping[str, str], platform: str) -> Path:
    home = _home(environ)
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Code" / "User"
    if platform.startswith("win"):
        return Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / "Code" / "User"
    return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "Code" / "User"


@dataclass(frozen=True)
class HostFormat:
    """One MCP host: where its config lives, how a server entry looks there, how it gets keys and a timeout."""

    name: str
    title: str
    servers_key: str
    key_style: KeyStyle
    tool_timeout_s: float
    user_path: Callable[[Mapping[str, str], str], Path]
    project_path: str | None = None  # relative to the project directory; None: the host has no project config
    syntax: Literal["json", "toml"] = "json"
    timeout_field: tuple[str, float] | None = None  # (field, units per second) when the host takes a timeout
    stdio_type: bool = False  # entries say "type": "stdio"
    host_env: tuple[tuple[str, str], ...] = ()  # the user config's ``env``: variables the host applies to itself

    @property
    def max_wait_s(self) -> float:
        return self.tool_timeout_s - TIMEOUT_MARGIN_S

    def path(self, scope: str, *, environ: Mapping[str, str] | None = None, platform: str | None = None,
             cwd: Path | None = None) -> Path:
        """The config file for ``scope`` (``user`` or ``project``).

        Raises:
            ValueError: the host has no project-scoped config.
        """
        if scope == "project":
            if self.project_path is None:
                raise ValueError(f"{self.name} has no project config; use --scope user")
            return (cwd or Path.cwd()) / self.project_path
        return self.user_path(os.environ if environ is None else environ, platform or sys.platform)


HOSTS: dict[str, HostFormat] = {host.name: host for host in (
    HostFormat("claude-desktop", "Claude Desktop", "mcpServers", "placeholder", FIXED_TIMEOUT_S,
               lambda env, platform: desktop_config.default_config_path(platform, env)),
    HostFormat("claude-code", "Claude Code", "mcpServers", "inherit", CLI_TIMEOUT_S,
               lambda env, platform: Path(env["CLAUDE_CONFIG_DIR"]) / ".claude.json" if env.get("CLAUDE_CONFIG_DIR")
               else _home(env) / ".claude.json",
               project_path=".mcp.json", timeout_field=("timeout", 1000), stdio_type=True,
               host_env=(("MCP_CONNECT_TIMEOUT_MS", str(CLAUDE_CODE_CONNECT_WAIT_MS)),)),
    HostFormat("codex", "Codex", "mcp_servers", "forward", CLI_TIMEOUT_S,
               lambda env, platform: Path(env.get("CODEX_HOME") or _home(env) / ".codex") / "config.toml",
               syntax="toml", timeout_field=("tool_timeout_sec", 1)),
    HostFormat("gemini-cli", "Gemini CLI", "mcpServers", "dollar", CLI_TIMEOUT_S,
               lambda env, platform: _home(env) / ".gemini" / "settings.json",
               project_path=".gemini/settings.json", timeout_field=("timeout", 1000)),
    HostFormat("cursor", "Cursor", "mcpServers", "env-colon", FIXED_TIMEOUT_S,
               lambda env, platform: _home(env) / ".cursor" / "mcp.json", project_path=".cursor/mcp.json"),
    HostFormat("vscode", "VS Code", "servers", "input", FIXED_TIMEOUT_S,
               lambda env, platform: _vscode_user_dir(env, platform) / "mcp.json", project_path=".vscode/mcp.json",
               stdio_type=True),
)}


def _input_id(var: str) -> str:
    return "llmmixer-" + var.lower().replace("_", "-")


def _key_names(spec: ServerSpec) -> list[str]:
    return [group[0] for group in spec.key_groups]


def _env(host: HostFormat, spec: ServerSpec, base_env: Mapping[str, str], with_env: bool) -> dict[str, str]:
    """The ``env`` block: values with ``--with-env``; otherwise the host's own way to name a key."""
    if with_env or host.key_style == "placeholder":
        return dict(base_env)
    refer = {"dollar": "${{{}}}", "env-colon": "${{env:{}}}", "input": "${{input:{}}}"}.get(host.key_style)
    if refer is None:  # inherit / forward: no env block at all
        return {}
    return {name: refer.format(_input_id(name) if host.key_style == "input" else name) for name in _key_names(spec)}


def _entry(host: HostFormat, name: str, spec: ServerSpec, base: Mapping[str, Any], with_env: bool) -> dict[str, Any]:
    args = list(base.get("args", []))
    if name == ORCHESTRATOR and "--max-wait-s" in args:
        args[args.index("--max-wait-s") + 1] = f"{host.max_wait_s:g}"
    entry: dict[str, Any] = {"type": "stdio"} if host.stdio_type else {}
    entry.update(command=base["command"], args=args)
    env = _env(host, spec, base.get("env", {}), with_env)
    if env:
        entry["env"] = env
    if host.key_style == "forward" and not with_env:
        entry["env_vars"] = [v for group in spec.key_groups for v in group] + [*spec.url_vars, *spec.extra_vars]
    if host.timeout_field is not None:
        field, per_second = host.timeout_field
        entry[field] = int(host.tool_timeout_s * per_second)
    if host.name == "codex":
        entry["startup_timeout_sec"] = CODEX_STARTUP_S
        entry["required"] = True  # start-up waits for it, so the first turn has its tools
    if host.name == "claude-code":
        entry["alwaysLoad"] = True  # connected before the first turn: else a slow start leaves the model without it
    return entry


def host_entries(host: HostFormat, names: Sequence[str] | None = None, *, with_env: bool = False,
                 environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``{entry_name: entry}`` in ``host``'s shape for the chosen servers (default: all).

    Raises:
        ValueError: an unknown server name.
        FileNotFoundError: a console script is not installed.
    """
    known = servers()
    chosen = list(known) if names is None else list(names)
    base = desktop_config.server_entries(chosen, with_env=with_env, environ=environ)
    return {known[name].entry_name: _entry(host, name, known[name], base[known[name].entry_name], with_env)
            for name in chosen}


def host_document(host: HostFormat, entries: Mapping[str, Mapping[str, Any]], scope: str = "user"
                  ) -> dict[str, Any]:
    """What the printed config holds: the servers under the host's key (and VS Code's password prompts, and in the
    user config the variables the host applies to itself)."""
    document: dict[str, Any] = {host.servers_key: dict(entries)}
    if host.host_env and scope == "user":
        document["env"] = dict(host.host_env)
    if host.key_style == "input":
        document["inputs"] = _inputs(entries)
    return document


def _inputs(entries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    ids: dict[str, str] = {}
    for entry in entries.values():
        for var, value in (entry.get("env") or {}).items():
            if isinstance(value, str) and value.startswith("${input:"):
                ids[value[len("${input:"):-1]] = var
    return [{"type": "promptString", "id": input_id, "description": f"{var} for LLMMixer", "password": True}
            for input_id, var in ids.items()]


def build_parser(host: HostFormat) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"llmmixer config {host.name}",
                                     description=f"Print (or --write) {host.title}'s MCP config for LLMMixer.")
    parser.add_argument("--servers", default=None,
                        help=f"comma-separated, out of {','.join(servers())} (default: all)")
    parser.add_argument("--write", action="store_true",
                        help=f"merge into {host.title}'s config file (backup first; other servers kept)")
    parser.add_argument("--with-env", action="store_true",
                        help="put the key values from this environment into the config (default: names only)")
    parser.add_argument("--scope", choices=("user", "project") if host.project_path else ("user",), default="user",
                        help="the user's config (default) or this directory's project config")
    parser.add_argument("--config-path", type=Path, default=None, help="the file for --write (default: the host's)")
    return parser


def run(host: HostFormat, args: argparse.Namespace) -> int:
    names = None if args.servers is None else [n.strip() for n in args.servers.split(",") if n.strip()]
    try:
        entries = host_entries(host, names, with_env=args.with_env)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    document = host_document(host, entries, args.scope)
    if not args.write:
        print(dump(document, host.syntax), end="")
        if any(is_placeholder(v) and host.key_style == "placeholder"
               for e in entries.values() for v in (e.get("env") or {}).values()):
            print("note: replace each ${NAME} with its key, or rerun with --with-env", file=sys.stderr)
        return 0
    try:
        path = args.config_path or host.path(args.scope)
        outcome: WriteOutcome = write_merged(path, document, host.syntax)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(outcome.describe(len(entries), host.title))
    return 0


def main(host_name: str, argv: Sequence[str] | None = None) -> int:
    """``llmmixer config HOST [flags]`` (argv excludes the subcommand words)."""
    host = HOSTS[host_name]
    return run(host, build_parser(host).parse_args(None if argv is None else list(argv)))
