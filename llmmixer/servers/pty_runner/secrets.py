"""Secrets: what a child may see of the runner's environment, the keys a command is given, and their redaction.

- The child environment is an **allowlist** (:data:`SAFE_ENV`, ``LC_*``, plus the policy's ``pass_env`` and
  ``--pass-env``), never name patterns: ``OPENAI_KEY``, ``GITHUB_PAT`` and ``SLACK_WEBHOOK_URL`` are dropped like
  every other name nobody allowed.
- ``[secrets]`` in the policy file names the keys a command needs: ``NAME = "env:VAR"`` (the runner's own variable
  ``VAR``, read once at start) or ``"file:/path"`` (read once at start, trailing newline dropped). Each is set in
  every child's environment as ``NAME``, and a call may add its own (``secrets`` argument of ``run``/``start``).
- :class:`Redactor` replaces every secret value, whole, with ``[redacted:NAME]`` in output chunks, events, log
  lines and error messages before they leave the runner. It also knows the values of the variables the allowlist
  dropped from the runner's (and its parent's) environment that look like keys, so a key that reaches a command
  some other way still never comes back out. :class:`StreamRedactor` does the same across chunk boundaries,
  holding back only a tail that could still become a secret.
- :func:`redact_inline` hides the value of a secret typed into a command line (``FOO=sk-... cmd``), and that
  value is redacted from the command's output too.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..core.errors import InvalidInputError
from ..core.redact import looks_secret, redact_inline

__all__ = ["SAFE_ENV", "EnvPolicy", "SecretSource", "load_secrets", "Redactor", "StreamRedactor", "redact_inline",
           "parent_environment"]

# Passed from the runner's environment when set; the rest of a child's environment is built by the runner.
SAFE_ENV: tuple[str, ...] = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TERM", "COLORTERM", "TZ", "USER",
                             "LOGNAME", "SHELL", "TMPDIR")
# What the child always gets, whatever the server had: a terminal type programs can draw on, and no shell history
# file, so arrow keys in an interactive shell cannot recall commands typed outside the runner (and its policy).
CHILD_DEFAULTS = {"TERM": "xterm-256color", "HISTFILE": "/dev/null", "PAGER": "cat", "GIT_PAGER": "cat"}
MIN_SECRET = 6  # shorter values would redact ordinary words


@dataclass(frozen=True, slots=True)
class EnvPolicy:
    """Which of the runner's variables a child sees."""

    pass_env: tuple[str, ...] = ()
    never: tuple[str, ...] = ()  # names (or patterns) dropped even when allowed

    def allowed(self, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in self.never):
            return False
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in (*SAFE_ENV, *self.pass_env))

    def child_env(self, environ: Mapping[str, str], cols: int, rows: int,
                  secrets: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {name: value for name, value in environ.items() if self.allowed(name)}
        env.update(CHILD_DEFAULTS)
        env["COLUMNS"], env["LINES"] = str(cols), str(rows)
        env.update(extra or {})
        env.update(secrets or {})
        return env

    def dropped_values(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Values of dropped variables that look like keys: redacted if they ever show up anyway."""
        return {name: value for name, value in environ.items()
                if not self.allowed(name) and looks_secret(name, value)}


@dataclass(frozen=True, slots=True)
class SecretSource:
    name: str
    spec: str  # env:VAR | file:/path

    def read(self, environ: Mapping[str, str]) -> str:
        """Raises: InvalidInputError when the variable or file is missing."""
        kind, _, where = self.spec.partition(":")
        if kind == "env":
            if where not in environ:
                raise InvalidInputError(f"secret {self.name}: the runner's environment has no {where}")
            return environ[where]
        if kind == "file":
            try:
                with open(os.path.expanduser(where), encoding="utf-8") as handle:
                    return handle.read().rstrip("\r\n")
            except OSError as exc:
                raise InvalidInputError(f"secret {self.name}: cannot read {where}: {exc.strerror or exc}") from exc
        raise InvalidInputError(f"secret {self.name}: {self.spec!r} is neither env:VAR nor file:/path")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def load_secrets(table: object) -> tuple[SecretSource, ...]:
    """The ``[secrets]`` table. Raises: InvalidInputError."""
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise InvalidInputError("[secrets] must be a table of NAME = \"env:VAR\" | \"file:/path\"")
    sources = []
    for name, spec in table.items():
        if not _NAME.match(name) or not isinstance(spec, str) or not spec.startswith(("env:", "file:")):
            raise InvalidInputError(f"[secrets] {name} = {spec!r}: expected NAME = \"env:VAR\" or "
                                    "\"file:/path\"")
        sources.append(SecretSource(name, spec))
    return tuple(sources)


def parent_environment() -> dict[str, str]:
    """The parent process's environment (Linux /proc; empty where unreadable)."""
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return env


def encodings(value: str) -> list[str]:
    """What ``value`` looks like base64-encoded (standard and URL-safe, at each of the three byte alignments it can
    have inside a longer text: the characters that depend on it alone), hex-encoded, percent-encoded and
    JSON-escaped. Each is redacted like the value itself."""
    raw = value.encode()
    forms: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = 4 if offset else 0
        end = (offset + len(raw)) // 3 * 4
        core = encoded[start:end]
        forms += [core, core.replace("+", "-").replace("/", "_")]
    forms += [raw.hex(), raw.hex().upper(), urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]]
    return [f for f in dict.fromkeys(forms) if f != value]


@dataclass(slots=True)
class Redactor:
    """Replaces known secret values, whole, in bytes and text."""

    values: dict[str, str] = field(default_factory=dict)  # value -> name
    _pattern: re.Pattern[bytes] | None = None
    _text: re.Pattern[str] | None = None

    def add(self, name: str, value: str) -> None:
        """``value`` and the ways a command may print it encoded (:func:`encodings`), each as ``[redacted:name]``."""
        if len(value) < MIN_SECRET:
            return
        for form in (value, *encodings(value)):
            if len(form) >= MIN_SECRET and form not in self.values:
                self.values[form] = name
                self._pattern = self._text = None

    def extend(self, items: Mapping[str, str]) -> None:
        for name, value in items.items():
            self.add(name, value)

    def copy_with(self, items: Mapping[str, str]) -> Redactor:
        other = Redactor(dict(self.values))
        other.extend(items)
        return other

    @property
    def longest(self) -> int:
        return max((len(v.encode()) for v in self.values), default=0)

    def _compiled(self) -> tuple[re.Pattern[bytes], re.Pattern[str]]:
        if self._pattern is None or self._text is None:
            ordered = sorted(self.values, key=len, reverse=True)
            self._pattern = re.compile(b"|".join(re.escape(v.encode()) for v in ordered))
            self._text = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern, self._text

    def marker(self, value: str) -> str:
        return f"[redacted:{self.values.get(value, 'secret')}]"

    def redact_bytes(self, data: bytes) -> bytes:
        if not self.values or not data:
            return data
        pattern, _ = self._compiled()
        return pattern.sub(lambda m: self.marker(m.group(0).decode(errors="replace")).encode(), data)

    def redact(self, text: str) -> str:
        if not self.values or not text:
            return text
        _, pattern = self._compiled()
        return pattern.sub(lambda m: self.marker(m.group(0)), text)

    def redact_any(self, value: object) -> object:
        """Strings inside dicts and lists, for events and error details."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_any(v) for v in value]
        return value

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redaction across chunk boundaries: a tail that is the start of some secret waits for the next chunk."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = b""

    def _prefixes(self) -> Iterable[bytes]:
        return (v.encode() for v in self._redactor.values)

    def feed(self, chunk: bytes) -> bytes:
        if not self._redactor.values:
            return chunk
        data = self._held + chunk
        out = self._redactor.redact_bytes(data)
        hold = 0
        longest = min(self._redactor.longest - 1, len(out))
        for size in range(longest, 0, -1):  # the longest tail that is a proper prefix of a secret
            tail = out[-size:]
            if any(v.startswith(tail) and len(v) > size for v in self._prefixes()):
                hold = size
                break
        self._held = out[len(out) - hold:] if hold else b""
        return out[:len(out) - hold] if hold else out

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held
