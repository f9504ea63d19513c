"""``llmmixer config claude-desktop``: the ``mcpServers`` entries that plug LLMMixer into an MCP host.

Printed, the entries name the API-key variables (``"${ANTHROPIC_API_KEY}"``) rather than their values, so the
output is safe to paste into an issue; ``--with-env`` fills in the values from this shell's environment.
``--write`` merges the entries into Claude Desktop's ``claude_desktop_config.json``: every other key and server is
kept, a timestamped backup is written first, and a second run with the same arguments changes nothing. A key the
user already typed into an existing entry is never replaced by a placeholder.

``--format claude-code`` prints the equivalent ``claude mcp add`` lines; there the values are ``"$NAME"`` so the
user's shell fills them in when the line runs.

Commands are absolute paths of the installed console scripts: a host such as Claude Desktop starts servers with a
minimal ``PATH`` that rarely includes a virtualenv.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..servers.core.manifest import ServerManifest, load_manifests, model_manifests
from .config_files import WriteOutcome, dump, merge, write_merged

__all__ = [
    "servers",
    "CONFIG_PATH_ENV",
    "ServerSpec",
    "WriteOutcome",
    "default_config_path",
    "script_path",
    "server_entries",
    "claude_code_lines",
    "merge_entries",
    "write_config",
    "main",
]

CONFIG_PATH_ENV = "LLMMIXER_CLAUDE_DESKTOP_CONFIG"
CONFIG_FILE = "claude_desktop_config.json"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One LLMMixer server as a host launches it."""

    entry_name: str  # the key under mcpServers
    script: str | None  # console script; None: ``python -m module`` with this interpreter
    args: tuple[str, ...] = ()
    key_vars: tuple[str, ...] = ()  # the API-key variables it reads (names only); the first is the usual one
    url_vars: tuple[str, ...] = ()  # base-URL overrides, copied only with --with-env and only when set
    extra_vars: tuple[str, ...] = field(default=())  # other settings copied with --with-env when set
    module: str | None = None
    # Per server it stands for: the usual key name, then names the SDK accepts instead (GEMINI_API_KEY, GOOGLE_API_KEY)
    key_groups: tuple[tuple[str, ...], ...] = ()


ORCHESTRATOR = "orchestrator"
# Claude Desktop gives a tool call about 60 s: the orchestrator returns a job before that (see host_config).
ORCHESTRATOR_ARGS = ("mcp", "--max-wait-s", "45")


def _spec(manifest: ServerManifest) -> ServerSpec:
    return ServerSpec(entry_name=manifest.script or f"llmmixer-{manifest.name}", script=manifest.script,
                      key_vars=manifest.key_vars[:1], module=manifest.module,
                      key_groups=(manifest.key_vars,) if manifest.key_vars else (),
                      url_vars=(manifest.base_url_var,) if manifest.base_url_var else (), extra_vars=manifest.env_vars)


def servers() -> dict[str, ServerSpec]:
    """Every registered server (from its manifest), then the orchestrator, which launches the adapters itself and
    so needs every key they need."""
    specs = {manifest.name: _spec(manifest) for manifest in load_manifests()}
    models = [specs[m.name] for m in model_manifests()]
    specs[ORCHESTRATOR] = ServerSpec("llmmixer", "llmmixer", args=ORCHESTRATOR_ARGS,
                                     key_vars=tuple(v for spec in models for v in spec.key_vars),
                                     key_groups=tuple(g for spec in models for g in spec.key_groups),
                                     url_vars=tuple(v for spec in models for v in spec.url_vars),
                                     extra_vars=("LLMMIXER_CONFIG", "LLMMIXER_STORE"))
    return specs


def placeholder(name: str) -> str:
    return "${" + name + "}"


def is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def default_config_path(platform: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where Claude Desktop keeps its config; ``$LLMMIXER_CLAUDE_DESKTOP_CONFIG`` overrides it (tests, portable installs)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_PATH_ENV):
        return Path(env[CONFIG_PATH_ENV]).expanduser()
    platform = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / CONFIG_FILE
    if platform.startswith("win"):
        appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(appdata) / "Claude" / CONFIG_FILE
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "Claude" / CONFIG_FILE


def script_path(script: str) -> str:
    """Absolute path of an installed console script, preferring the one that belongs to this interpreter.

    Raises:
        FileNotFoundError: the script is not installed next to this interpreter nor on ``PATH``.
    """
    suffix = ".exe" if os.name == "nt" else ""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin"))):
        candidate = Path(directory) / f"{script}{suffix}"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
    found = shutil.which(script)
    if found:
        return str(Path(found).absolute())
    raise FileNotFoundError(f"console script {script!r} not found; install LLMMixer with `pip install llmmixer`")


def _env_for(spec: ServerSpec, with_env: bool, environ: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, *alternates in spec.key_groups:
        alternate = next((a for a in alternates if environ.get(a)), None)
        if with_env and environ.get(name):
            env[name] = environ[name]
        elif with_env and alternate:
            env[alternate] = environ[alternate]
        else:
            env[name] = placeholder(name)
    if with_env:
        for name in (*spec.url_vars, *spec.extra_vars):
            if environ.get(name):
                env[name] = environ[name]
    return env


def server_entries(
    names: Sequence[str] | None = None,
    *,
    with_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{entry_name: {"command", "args", "env"?}}`` for the chosen servers, in the order given.

    Raises:
        ValueError: an unknown server name.
        FileNotFoundError: a console script is not installed.
    """
    environ = os.environ if environ is None else environ
    known = servers()
    entries: dict[str, dict[str, Any]] = {}
    for name in known if names is None else names:
        spec = known.get(name)
        if spec is None:
            raise ValueError(f"unknown server {name!r}; choose from {', '.join(known)}")
        if spec.script is None:  # a plugin without a console script: run its module with this interpreter
            entry: dict[str, Any] = {"command": sys.executable, "args": ["-m", str(spec.module), *spec.args]}
        else:
            entry = {"command": script_path(spec.script), "args": list(spec.args)}
        env = _env_for(spec, with_env, environ)
        if env:
            entry["env"] = env
        entries[spec.entry_name] = entry
    return entries


def claude_code_lines(entries: Mapping[str, Mapping[str, Any]], *, scope: str = "user") -> list[str]:
    """``claude mcp add`` lines; placeholders become ``"$NAME"`` for the user's shell to expand."""
    lines = []
    for name, entry in entries.items():
        parts = ["claude", "mcp", "add", "--transport", "stdio", "--scope", scope, shlex.quote(name)]
        for var, value in entry.get("env", {}).items():
            shown = f'"${var}"' if is_placeholder(value) else shlex.quote(str(value))
            parts += ["--env", f"{var}={shown}"]
        parts += ["--", shlex.quote(entry["command"]), *(shlex.quote(a) for a in entry.get("args", []))]
        lines.append(" ".join(parts))
    return lines


def merge_entries(existing: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of a host config with our entries set; everything else, including key order, is kept.

    An env value the user already set in an existing entry survives when ours is only a placeholder.

    Raises:
        ValueError: ``mcpServers`` exists but is not an object.
    """
    return dict(merge(dict(existing), {"mcpServers": entries}))


def _dump(config: Mapping[str, Any]) -> str:
    return dump(config, "json")


def write_config(path: Path, entries: Mapping[str, Mapping[str, Any]], *, now: _dt.datetime | None = None) -> WriteOutcome:
    """Merge ``entries`` into the host config at ``path``; back up the old file first; no-op when nothing changes.

    Raises:
        ValueError: the existing file is not a JSON object (it is left untouched).
        OSError: the file cannot be read or written.
    """
    return write_merged(path, {"mcpServers": entries}, "json", now=now)


def build_parser(prog: str = "llmmixer config claude-desktop") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Print (or --write) the MCP host config for LLMMixer.")
    parser.add_argument("--servers", default=None,
                        help=f"comma-separated, out of {','.join(servers())} (default: all)")
    parser.add_argument("--write", action="store_true",
                        help="merge into Claude Desktop's config file (backup first; other entries kept)")
    parser.add_argument("--with-env", action="store_true",
                        help="put the key values from this environment into the config (default: names only)")
    parser.add_argument("--format", choices=("claude-desktop", "claude-code"), default="claude-desktop")
    parser.add_argument("--config-path", type=Path, default=None,
                        help=f"config file for --write (default: the platform's; or ${CONFIG_PATH_ENV})")
    parser.add_argument("--scope", default="user", choices=("local", "project", "user"),
                        help="Claude Code scope for --format claude-code (default user)")
    return parser


def run(args: argparse.Namespace) -> int:
    names = None if args.servers is None else [n.strip() for n in args.servers.split(",") if n.strip()]
    try:
        entries = server_entries(names, with_env=args.with_env)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "claude-code":
        if args.write:
            print("error: --write applies to --format claude-desktop; run the printed lines instead", file=sys.stderr)
            return 2
        print("\n".join(claude_code_lines(entries, scope=args.scope)))
        return 0
    if not args.write:
        print(_dump({"mcpServers": entries}), end="")
        if any(is_placeholder(v) for e in entries.values() for v in e.get("env", {}).values()):
            print("note: replace each ${NAME} with its key, or rerun with --with-env", file=sys.stderr)
        return 0
    path = args.config_path or default_config_path()
    try:
        outcome = write_config(path, entries)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(outcome.describe(len(entries), "Claude Desktop"))
    left = _placeholders_in(outcome.path, entries)
    if left:
        print(f"note: {', '.join(left)} {'is' if len(left) == 1 else 'are'} written as ${{NAME}} placeholders, which "
              f"the host passes on as they are: put each key into {outcome.path}, or rerun with --with-env to copy "
              "them from this shell", file=sys.stderr)
    return 0


def _placeholders_in(path: str | Path, entries: dict[str, Any]) -> list[str]:
    """The variables still written as ``${NAME}`` in the file's entries for ``entries`` (a key the user typed into an
    existing entry was kept, so the file is read back)."""
    try:
        servers = json.loads(Path(path).read_text(encoding="utf-8")).get("mcpServers", {})
    except (OSError, ValueError, AttributeError):
        return []
    return sorted({name for server in entries for name, value in (servers.get(server, {}).get("env") or {}).items()
                   if is_placeholder(value)})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``llmmixer config claude-desktop [flags]`` (argv excludes the subcommand words)."""
    return run(build_parser().parse_args(None if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())
