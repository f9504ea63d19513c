"""Which MCP servers the orchestrator talks to, in Claude Desktop's ``mcpServers`` shape, and its settings.

Lookup order: ``--config PATH`` (or ``$LLMMIXER_CONFIG``), then ``./llmmixer.json``, then ``<user config dir>/llmmixer/config.json``
(platformdirs). With no file, the four built-in servers are launched over stdio with this Python.

```json
{
  "mcpServers": {
    "claude": {"command": "llmmixer-claude", "args": [], "env": {"ANTHROPIC_API_KEY": "..."}},
    "gpt":    {"url": "http://127.0.0.1:9001/mcp", "headers": {"Authorization": "Bearer ..."}}
  },
  "settings": {"store": "sqlite:///~/.local/share/llmmixer/events.db", "mode": "race", "models": ["claude", "gpt"]}
}
```

A server named ``claude``, ``gpt``, ``gemini`` or ``pty`` (or with ``"source"`` set) plays that role. Each child
gets only its own key: the orchestrator never hands Anthropic's key to the Gemini adapter, nor any key to the PTY
runner.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..servers.core.errors import InvalidInputError

__all__ = ["MODEL_SOURCES", "SOURCE_KEYS", "ServerSpec", "Settings", "Config", "load_config", "default_servers"]

MODEL_SOURCES = ("claude", "gpt", "gemini")
MODES = ("race", "all", "first-token", "hedge", "fallback")

# The environment each built-in role may receive from the orchestrator's own environment.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "gpt": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_STYLE", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
    "pty": ("LLMMIXER_PTY_POLICY", "LLMMIXER_PTY_BACKEND"),
}
SHARED_SETTINGS = ("LLMMIXER_MAX_RETRIES", "LLMMIXER_TIMEOUT_S", "LLMMIXER_MAX_PROMPT_BYTES",
                   # how every SDK's HTTP client reaches its vendor: a private CA, a proxy
                   "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")

_MODULES = {
    "claude": "llmmixer.servers.claude_adapter",
    "gpt": "llmmixer.servers.gpt_adapter",
    "gemini": "llmmixer.servers.gemini_adapter",
    "pty": "llmmixer.servers.pty_runner",
}


@dataclass
class ServerSpec:
    """One entry of ``mcpServers``: a command to launch over stdio, or a Streamable HTTP ``url``."""

    name: str
    source: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    max_concurrency: int = 64
    # Environment variables passed through from the orchestrator's own environment (names only).
    passthrough: tuple[str, ...] = ()

    @property
    def transport(self) -> str:
        return "streamable-http" if self.url else "stdio"

    def child_env(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """The launched server's extra environment: its own keys and settings, nothing of the other vendors."""
        environ = dict(os.environ) if environ is None else environ
        out = {name: environ[name] for name in (*self.passthrough, *SHARED_SETTINGS) if environ.get(name)}
        out.update(self.env)
        return out

    @classmethod
    def from_json(cls, name: str, raw: Any) -> ServerSpec:
        if not isinstance(raw, dict):
            raise InvalidInputError(f"mcpServers.{name} must be an object")
        source = raw.get("source") or name
        url, command = raw.get("url"), raw.get("command")
        if bool(url) == bool(command):
            raise InvalidInputError(f"mcpServers.{name} needs exactly one of 'command' or 'url'")
        args, env, headers = raw.get("args", []), raw.get("env", {}), raw.get("headers", {})
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            raise InvalidInputError(f"mcpServers.{name}.args must be a list of strings")
        for label, mapping in (("env", env), ("headers", headers)):
            if not (isinstance(mapping, dict) and all(isinstance(v, str) for v in mapping.values())):
                raise InvalidInputError(f"mcpServers.{name}.{label} must map names to strings")
        limit = raw.get("maxConcurrency", 64)
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"mcpServers.{name}.maxConcurrency must be a positive integer")
        return cls(name=name, source=source, command=command, args=list(args), env=dict(env), url=url,
                   headers=dict(headers), max_concurrency=limit, passthrough=SOURCE_KEYS.get(source, ()))


@dataclass
class Settings:
    store: str | None = None
    mode: str = "race"
    models: list[str] = field(default_factory=lambda: list(MODEL_SOURCES))
    model_for: dict[str, str] = field(default_factory=dict)
    hedge_delay_ms: float | None = None  # None: the primary's observed p95 TTFT
    hedge_budget: float = 0.15  # extra hedge legs as a fraction of runs, over time
    call_timeout_s: float = 600.0

    @classmethod
    def from_json(cls, raw: Any) -> Settings:
        if not isinstance(raw, dict):
            raise InvalidInputError("settings must be an object")
        settings = cls()
        for key, value in raw.items():
            attr = key.replace("-", "_")
            if not hasattr(settings, attr):
                raise InvalidInputError(f"unknown setting {key!r}")
            setattr(settings, attr, value)
        if settings.mode not in MODES:
            raise InvalidInputError(f"settings.mode must be one of {', '.join(MODES)}")
        return settings


@dataclass
class Config:
    servers: dict[str, ServerSpec]
    settings: Settings = field(default_factory=Settings)
    path: Path | None = None
    agents: dict[str, Any] | None = None  # the raw ``agents`` object; orchestrator/agents/spec.py reads it

    def server_for(self, source: str) -> ServerSpec:
        for spec in self.servers.values():
            if spec.source == source:
                return spec
        if source in self.servers:
            return self.servers[source]
        known = ", ".join(sorted({s.source for s in self.servers.values()}))
        raise InvalidInputError(f"no server for {source!r}; configured: {known}")

    @property
    def model_sources(self) -> list[str]:
        return [s.source for s in self.servers.values() if s.source != "pty"]


def default_servers(python: str | None = None) -> dict[str, ServerSpec]:
    """The four built-in servers, launched over stdio with ``python -m`` (works inside any venv)."""
    python = python or sys.executable
    return {source: ServerSpec(name=source, source=source, command=python, args=["-m", module],
                               passthrough=SOURCE_KEYS[source])
            for source, module in _MODULES.items()}


def _candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    path = path if path is not None else os.environ.get("LLMMIXER_CONFIG") or None
    if path is not None:
        return [Path(path).expanduser()]
    import platformdirs

    return [Path.cwd() / "llmmixer.json", Path(platformdirs.user_config_dir("llmmixer")) / "config.json"]


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """The configuration from ``path`` or the default locations; the built-in servers when there is no file.

    Raises:
        InvalidInputError: an unreadable or malformed file, or a malformed ``LLMMIXER_*`` number in the
            environment (checked here once, so a typo is a usage error, not a child server that will not start).
    """
    from ..servers.core.envvars import EnvError, adapter_numbers

    try:
        adapter_numbers()
    except EnvError as error:
        raise InvalidInputError(str(error)) from None
    explicit = path is not None or bool(os.environ.get("LLMMIXER_CONFIG"))
    for candidate in _candidates(path):
        if candidate.is_file():
            try:
                raw = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InvalidInputError(f"cannot read config {candidate}: {exc}") from exc
            return _parse(raw, candidate)
        if explicit:
            raise InvalidInputError(f"config file not found: {candidate}")
    return Config(servers=default_servers(), settings=Settings(store=os.environ.get("LLMMIXER_STORE") or None))


def _parse(raw: Any, path: Path) -> Config:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: the top level must be an object")
    servers_raw = raw.get("mcpServers")
    servers = default_servers() if servers_raw is None else {}
    if servers_raw is not None:
        if not isinstance(servers_raw, dict):
            raise InvalidInputError(f"{path}: mcpServers must be an object")
        servers = {name: ServerSpec.from_json(name, entry) for name, entry in servers_raw.items()}
    settings = Settings.from_json(raw.get("settings", {}))
    settings.store = settings.store or os.environ.get("LLMMIXER_STORE") or None
    return Config(servers=servers, settings=settings, path=path, agents=raw.get("agents"))
