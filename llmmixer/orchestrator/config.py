"""Which MCP servers the orchestrator talks to, in Claude Desktop's ``mcpServers`` shape, and its settings.

Lookup order: ``--config PATH`` (or ``$LLMMIXER_CONFIG``), then ``./llmmixer.json``, then ``<user config dir>/llmmixer/config.json``
(platformdirs). With no file, every registered server (see :mod:`llmmixer.servers.core.manifest`) is launched over
stdio with this Python.

```json
{
  "mcpServers": {
    "claude": {"command": "llmmixer-claude", "args": [], "env": {"ANTHROPIC_API_KEY": "..."}},
    "gpt":    {"url": "http://127.0.0.1:9001/mcp", "headers": {"Authorization": "Bearer ..."}}
  },
  "settings": {"store": "sqlite:///~/.local/share/llmmixer/events.db", "mode": "race", "models": ["claude", "gpt"]}
}
```

A server named after a registered server (``claude``, ``gpt``, ``gemini``, ``pty``, or a plugin's), or with
``"source"`` set to one, plays that role. Each child gets only its own variables, as its manifest lists them: the
orchestrator never hands Anthropic's key to the Gemini adapter, nor any key to the PTY runner.

The file is validated by pydantic models with ``extra="forbid"`` (as llm's ``Options``): an unknown key, a typo
such as ``mcpServer``, or a value of the wrong type is an :class:`InvalidInputError` naming the key and the value.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema,
                      field_validator, model_validator)

from ..servers.core.bounds import MAX_TIMEOUT_S, MAX_WAIT_S, bounded_seconds
from ..servers.core.errors import InvalidInputError
from ..servers.core.manifest import load_manifests, manifest_for, model_manifests
from . import config_paths
from .config_paths import SHARED_SETTINGS
from .modes import DEFAULT_MODE, MODES

__all__ = ["MODES", "ModeName", "ServerSpec", "ServerEntry", "Settings", "ConfigFile", "Config", "load_config",
           "default_servers", "model_sources", "passthrough_for"]

DEFAULT_MAX_QUEUE = 256  # per server: calls waiting for a concurrency slot before runs are refused


def _valid_mode(mode: str) -> str:
    if mode not in MODES:  # pydantic turns this ValueError into its validation error, naming the field
        raise ValueError(f"must be one of {', '.join(map(repr, MODES))}")
    return mode


def _bounded(maximum: float, unit: float = 1.0) -> AfterValidator:
    """A duration setting clamped to ``maximum`` seconds (Infinity included), logged when it is."""

    def clamp(value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        seconds = bounded_seconds(value / unit, f"settings.{info.field_name}", maximum)
        return None if seconds is None else seconds * unit

    return AfterValidator(clamp)


# Waits are at most an hour, timeouts at most a day (servers/core/bounds.py); ``breaker_s: Infinity`` is an hour.
WaitSeconds = Annotated[float, _bounded(MAX_WAIT_S)]
TimeoutSeconds = Annotated[float, _bounded(MAX_TIMEOUT_S)]
WaitMs = Annotated[float, _bounded(MAX_WAIT_S, unit=1000.0)]


# A mode in a pydantic model or an MCP tool signature: validated, with the modes as the schema's enum.
ModeName = Annotated[str, AfterValidator(_valid_mode), WithJsonSchema({"type": "string", "enum": list(MODES)})]


def model_sources() -> list[str]:
    """The registered model adapters, in their default order: the default ``settings.models``."""
    return [m.name for m in model_manifests()]


def passthrough_for(source: str) -> tuple[str, ...]:
    """The variables a server playing ``source`` may receive from the orchestrator's environment."""
    manifest = manifest_for(source)
    return manifest.passthrough if manifest else ()


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
    # Calls that may wait for one of those slots; a run beyond it is refused (rate_limit, HTTP 429).
    max_queue: int = DEFAULT_MAX_QUEUE
    # Environment variables passed through from the orchestrator's own environment (names only).
    passthrough: tuple[str, ...] = ()
    # The registered server's object in this process, over the MCP SDK's in-memory streams (``args`` are its
    # flags; see ``ServerEntry.transport``).
    inprocess: bool = False

    @property
    def transport(self) -> str:
        return "inprocess" if self.inprocess else "streamable-http" if self.url else "stdio"

    def child_env(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """The launched server's extra environment: its own keys and settings, nothing of the other vendors."""
        environ = dict(os.environ) if environ is None else environ
        out = {name: environ[name] for name in (*self.passthrough, *SHARED_SETTINGS) if environ.get(name)}
        out.update(self.env)
        return out

    @classmethod
    def from_json(cls, name: str, raw: Any) -> ServerSpec:
        """One ``mcpServers`` entry, validated.

        Raises:
            InvalidInputError: not an object, an unknown key, a wrong type, or not exactly one of command/url.
        """
        try:
            entry = ServerEntry.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInputError(explain(exc, f"mcpServers.{name}")) from None
        return entry.spec(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ServerEntry(_Strict):
    """One ``mcpServers`` entry as written in the file (Claude Desktop's keys, plus ``source``/``maxConcurrency``)."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    type: str | None = None  # Claude Code writes "stdio" / "http"; the transport follows command/url either way
    # "inprocess": the registered server this entry plays (its name, or ``source``) runs inside the orchestrator,
    # connected through the MCP SDK's in-memory streams; ``args`` are its flags, ``command`` (what stdio would
    # launch) is not run. The same protocol, cancellation and errors; no process of its own.
    transport: Literal["stdio", "streamable-http", "inprocess"] | None = None
    source: str | None = None
    max_concurrency: int = Field(default=64, ge=1, strict=True, alias="maxConcurrency")
    max_queue: int = Field(default=DEFAULT_MAX_QUEUE, ge=0, strict=True, alias="maxQueue")

    @model_validator(mode="after")
    def _one_transport(self) -> ServerEntry:
        if self.transport == "inprocess":
            if self.url:
                raise ValueError("an inprocess server has no 'url' (it runs inside the orchestrator)")
            if self.env:
                raise ValueError("an inprocess server reads the orchestrator's own environment, so it takes no "
                                 "'env'; set the variables for llmmixer itself, or use \"transport\": \"stdio\"")
            return self
        if bool(self.url) == bool(self.command):
            raise ValueError("needs exactly one of 'command' or 'url'")
        if self.transport is not None and self.transport != ("streamable-http" if self.url else "stdio"):
            raise ValueError(f"transport {self.transport!r} does not match {'url' if self.url else 'command'}")
        return self

    def spec(self, name: str) -> ServerSpec:
        from .inprocess import manifest_of

        source = self.source or name
        if self.transport == "inprocess" and manifest_of(source, self.command, self.args)[0] is None:
            known = ", ".join(m.name for m in load_manifests())
            raise InvalidInputError(f"mcpServers.{name}: an inprocess server must play a registered server "
                                    f"(its name, 'source' or 'command': {known})")
        return ServerSpec(name=name, source=source, command=self.command, args=list(self.args), env=dict(self.env),
                          url=self.url, headers=dict(self.headers), max_concurrency=self.max_concurrency,
                          max_queue=self.max_queue, passthrough=passthrough_for(source),
                          inprocess=self.transport == "inprocess")


class TelemetrySettings(_Strict):
    """``settings.telemetry`` (docs/telemetry.md): OpenTelemetry, off by default; the ``OTEL_*`` variables also turn
    the export on."""

    enabled: bool = False  # export traces and metrics over OTLP/HTTP
    endpoint: str | None = None  # the collector's OTLP/HTTP base URL (http://127.0.0.1:4318); else OTEL_* variables
    prometheus: bool = False  # `llmmixer serve` answers GET /metrics with Prometheus text


class _Dashed(_Strict):
    """Keys may be written with ``-`` or ``_`` (``hedge-budget``)."""

    @model_validator(mode="before")
    @classmethod
    def _underscores(cls, raw: Any) -> Any:
        return {str(k).replace("-", "_"): v for k, v in raw.items()} if isinstance(raw, dict) else raw


class AgentLimits(_Dashed):
    """``settings.agent_limits`` (docs/agents.md): what each agent leg's CLI may use, its processes together; a leg
    over one is stopped with an error naming the limit, and the other legs go on. Absent: no limit."""

    memory_mb: int | None = Field(default=None, ge=16)  # resident memory, in MiB
    cpu_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # CPU time, in seconds
    processes: int | None = Field(default=None, ge=1)  # processes alive at once


class Settings(_Dashed):
    """``settings`` in the config file. Keys may be written with ``-`` or ``_`` (``hedge-budget``)."""

    store: str | None = None
    mode: ModeName = DEFAULT_MODE
    models: list[str] = Field(default_factory=model_sources, min_length=1)
    model_for: dict[str, str] = Field(default_factory=dict)
    hedge_delay_ms: WaitMs | None = Field(default=None, ge=0)  # None: the primary's observed p95 TTFT
    hedge_budget: float = Field(default=0.15, ge=0, le=1)  # extra hedge legs as a fraction of runs, over time
    call_timeout_s: TimeoutSeconds = Field(default=600.0, gt=0)
    # A model call with no streamed output for this long is cancelled as a `timeout` (0: no idle limit).
    idle_timeout_s: TimeoutSeconds = Field(default=60.0, ge=0)
    prices: dict[str, Any] = Field(default_factory=dict)  # model -> [input, output] USD per million tokens
    # Cooldowns (orchestrator/cooldown.py): the circuit opens after this many server errors in a row, for this long.
    breaker_failures: int = Field(default=3, ge=1)
    breaker_s: WaitSeconds = Field(default=30.0, gt=0)
    # The longest any server cools down, whatever its retry-after said (at most an hour).
    max_cooldown_s: WaitSeconds = Field(default=3600.0, gt=0)
    # A leg with another to fall back on waits at most this long for a retry; a longer retry-after moves on.
    fast_retry_wait_s: WaitSeconds = Field(default=0.5, ge=0)
    # Where cooldowns are kept between runs and processes (None: <user data dir>/llmmixer/cooldowns.json).
    cooldown_file: str | None = None
    # Names for virtual models on the gateway (orchestrator/gateway): {"fast": "race/claude,gpt"}.
    aliases: dict[str, str] = Field(default_factory=dict)
    # The resident service (orchestrator/resident.py): the CLI uses a running `llmmixer serve` for this config, and
    # starts one when there is none; false keeps every command in its own process. A service the CLI started exits
    # after this many seconds with no client connected and no run in flight.
    resident: bool = True
    idle_exit_s: float = Field(default=600.0, gt=0)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Spend per calendar day (local time) over every run in the run log, in USD: a run is refused once it is reached.
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    agent_limits: AgentLimits = Field(default_factory=AgentLimits)

    @field_validator("models")
    @classmethod
    def _no_blank_model(cls, models: list[str]) -> list[str]:
        if any(not m.strip() for m in models):
            raise ValueError("a model name is empty")
        return models

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, raw: Any) -> dict[str, Any]:
        from ..servers.core.pricing import parse_prices

        return dict(parse_prices(raw))  # its ValueError names the model and the form that works

    @classmethod
    def from_json(cls, raw: Any) -> Settings:
        """The ``settings`` object, validated.

        Raises:
            InvalidInputError: not an object, an unknown setting, or a value of the wrong type or range.
        """
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInputError(explain(exc, "settings")) from None


class ConfigFile(_Strict):
    """The whole file: ``mcpServers``, ``settings`` and ``agents``, nothing else."""

    mcpServers: dict[str, ServerEntry] | None = None  # noqa: N815 - Claude Desktop's spelling
    settings: Settings = Field(default_factory=Settings)
    agents: dict[str, Any] | None = None  # coding agents; validated by orchestrator/agents/spec.py


def explain(exc: ValidationError, where: str) -> str:
    """One line per problem: the dotted key, what is wrong, the value given; a near-miss key gets a suggestion."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in (where, *error["loc"]) if part != "")
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1]) if error["loc"] else ""
            known = _known_keys(error["loc"][:-1], where)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(known)}" if known else "")
            problems.append(f"{path}: unknown key{hint}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            message = re.sub(r" or instance of \w+", "", message)
            problems.append(f"{path}: {message} (got {_shown(error.get('input'))})")
    return "; ".join(problems)


def _known_keys(loc: tuple[Any, ...], where: str) -> list[str]:
    if where == "settings" or loc[:1] == ("settings",):
        return list(Settings.model_fields)
    if where.startswith("mcpServers") or loc[:1] == ("mcpServers",):
        return [f.alias or name for name, f in ServerEntry.model_fields.items()]
    return list(ConfigFile.model_fields)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


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
        """Configured servers that answer prompts: every one but the command runner."""
        runners = {m.name for m in load_manifests() if m.role == "runner"}
        return [s.source for s in self.servers.values() if s.source not in runners]


def default_servers(python: str | None = None, *, inprocess: bool = False) -> dict[str, ServerSpec]:
    """Every registered server, launched over stdio with ``python -m`` (works inside any venv); with
    ``inprocess``, each runs inside this process instead (see ``ServerEntry.transport``)."""
    python = python or sys.executable
    if inprocess:
        return {m.name: ServerSpec(name=m.name, source=m.name, passthrough=m.passthrough, inprocess=True)
                for m in load_manifests()}
    return {m.name: ServerSpec(name=m.name, source=m.name, command=python, args=["-m", m.module],
                               passthrough=m.passthrough)
            for m in load_manifests()}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """The configuration from ``path`` or the default locations; the built-in servers when there is no file.

    Raises:
        InvalidInputError: the file named is missing, is not JSON, or does not validate (the message names the
            key), or a malformed ``LLMMIXER_*`` number in the environment (checked here once, so a typo is a usage
            error, not a child server that will not start).
    """
    from ..servers.core.envvars import EnvError, adapter_numbers

    try:
        adapter_numbers()
    except EnvError as error:
        raise InvalidInputError(str(error)) from None
    explicit = config_paths.explicit(path)
    for candidate in config_paths.candidates(path):
        if candidate.is_file():
            return _parse(read_json(candidate, "config"), candidate)
        if explicit:
            raise InvalidInputError(f"config file not found: {candidate}")
    return Config(servers=default_servers(), settings=Settings(store=os.environ.get("LLMMIXER_STORE") or None))


def read_json(path: Path, what: str) -> Any:
    """A JSON file a user wrote: UTF-8 with or without a BOM.

    Raises:
        InvalidInputError: one line saying what is wrong (unreadable, not UTF-8, not JSON, nested too deep, a number
            with too many digits), never a traceback.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise InvalidInputError(f"{what} {path} is not UTF-8 text{hint}: byte {exc.start}; save it as UTF-8"
                                ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError(f"{what} {path} is nested too deeply to be a {what}") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise InvalidInputError(f"{what} {path} holds a number that is too large: {exc}") from None


def _parse(raw: Any, path: Path) -> Config:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: the top level must be an object")
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{path}: {explain(exc, '')}") from None
    if parsed.mcpServers is None:
        servers = default_servers()
    else:
        servers = {name: entry.spec(name) for name, entry in parsed.mcpServers.items()}
    settings = parsed.settings
    settings.store = settings.store or os.environ.get("LLMMIXER_STORE") or None
    return Config(servers=servers, settings=settings, path=path, agents=raw.get("agents"))
