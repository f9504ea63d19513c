"""Merging our server entries into an MCP host's config file (JSON or TOML), safely.

- Every other key, server and setting is kept (TOML comments and layout too: :mod:`tomlkit` edits in place).
- An ``env`` value the user already typed into an existing entry survives when ours is only a reference to it
  (``${NAME}``, ``$NAME``, ``${env:NAME}``, ``${input:…}``).
- VS Code's ``inputs`` (password prompts) are merged by ``id``; a top-level ``env`` (the variables a host applies to
  itself) gets ours only where the user has not set them.
- A timestamped backup is written before the file changes; a run that changes nothing writes nothing.
- The new file is written next to the old one and renamed over it, so a crash never leaves a half-written config.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["WriteOutcome", "dump", "is_reference", "merge", "write_merged"]

Syntax = Literal["json", "toml"]


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    path: Path
    changed: bool
    backup: Path | None

    def describe(self, servers: int, host_title: str) -> str:
        """What ``--write`` tells the user."""
        if not self.changed:
            return f"{self.path} already up to date"
        backup = f" (backup: {self.backup})" if self.backup else ""
        return f"wrote {servers} server(s) to {self.path}{backup}; restart {host_title} to load them"


def is_reference(value: Any) -> bool:
    """A value that names a variable or prompt rather than holding a key."""
    return isinstance(value, str) and (value.startswith("$") or (value.startswith("${") and value.endswith("}")))


def dump(document: Mapping[str, Any], syntax: Syntax) -> str:
    if syntax == "toml":
        import tomlkit

        return tomlkit.dumps(document)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _parse(raw: str, syntax: Syntax, path: Path) -> MutableMapping[str, Any]:
    if not raw.strip():
        return _empty(syntax)
    if syntax == "toml":
        import tomlkit
        from tomlkit.exceptions import ParseError

        try:
            return tomlkit.parse(raw)
        except ParseError as exc:
            raise ValueError(f"{path} is not valid TOML ({exc}); fix or move it, then run again") from exc
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or move it, then run again") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not hold a JSON object; fix or move it, then run again")
    return loaded


def _empty(syntax: Syntax) -> MutableMapping[str, Any]:
    if syntax == "toml":
        import tomlkit

        return tomlkit.document()
    return {}


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _servers_table(syntax: Syntax) -> MutableMapping[str, Any]:
    if syntax == "toml":
        import tomlkit

        return tomlkit.table(is_super_table=True)  # [mcp_servers.NAME] sections, no bare [mcp_servers] header
    return {}


def _keep_typed_env(old: Any, new: dict[str, Any]) -> None:
    for block in ("env",):
        if not (isinstance(old, Mapping) and isinstance(old.get(block), Mapping) and isinstance(new.get(block), dict)):
            continue
        for var, value in new[block].items():
            kept = _plain(old[block].get(var))
            if is_reference(value) and isinstance(kept, str) and kept and not is_reference(kept):
                new[block][var] = kept


def merge(existing: MutableMapping[str, Any], document: Mapping[str, Any], syntax: Syntax = "json"
          ) -> MutableMapping[str, Any]:
    """A copy of ``existing`` with ``document``'s servers set (its ``inputs`` merged by id, its ``env`` added).

    Raises:
        ValueError: the servers key (or ``inputs``, ``env``) exists but has the wrong type; fix it by hand first.
    """
    merged = copy.deepcopy(existing)
    for key, value in document.items():
        current = merged.get(key)
        if key == "env":  # the variables a host applies to itself: one the user set stays theirs
            if current is None:
                current = merged[key] = {}
            if not isinstance(current, MutableMapping):
                raise ValueError("env in the existing config is not an object; fix it by hand first")
            for var, setting in value.items():
                current.setdefault(var, setting)
            continue
        if key == "inputs":
            if current is None:
                current = merged[key] = []
            if not isinstance(current, list):
                raise ValueError("inputs in the existing config is not a list; fix it by hand first")
            known = {_plain(item).get("id") for item in current if isinstance(_plain(item), dict)}
            current.extend(copy.deepcopy(item) for item in value if item["id"] not in known)
            continue
        if current is None:
            current = merged[key] = _servers_table(syntax)
        if not isinstance(current, MutableMapping):
            raise ValueError(f"{key} in the existing config is not a table/object; fix it by hand first")
        for name, entry in value.items():
            new = json.loads(json.dumps(entry))
            _keep_typed_env(current.get(name), new)
            current[name] = new
    return merged


def write_merged(path: Path, document: Mapping[str, Any], syntax: Syntax = "json", *,
                 now: _dt.datetime | None = None) -> WriteOutcome:
    """Merge ``document`` into the config at ``path``; back up the old file first; no-op when nothing changes.

    Raises:
        ValueError: the existing file does not parse, or holds the servers key with the wrong type (it is left
            untouched).
        OSError: the file cannot be read or written.
    """
    raw = path.read_text(encoding="utf-8") if path.exists() else None
    existing = _parse(raw or "", syntax, path)
    merged = merge(existing, document, syntax)
    if raw is not None and _plain(merged) == _plain(existing):
        return WriteOutcome(path, changed=False, backup=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if raw is not None:
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S-%f")
        backup = path.with_name(f"{path.name}.{stamp}.bak")
        shutil.copy2(path, backup)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dump(merged, syntax))
        if raw is not None:
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o600)  # a host config may hold keys
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return WriteOutcome(path, changed=True, backup=backup)
