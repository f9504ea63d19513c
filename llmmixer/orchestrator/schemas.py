"""Schemas for typed answers: a JSON Schema object, JSON text, a file (CLI only), or llm's concise form.

The concise form (as in simonw/llm) lists fields separated by commas, or by newlines when there are any::

    name, age int, bio: one sentence
    ->  {"type": "object",
         "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                        "bio": {"type": "string", "description": "one sentence"}},
         "required": ["name", "age", "bio"]}

Each field is ``NAME [TYPE][: DESCRIPTION]``; TYPE is ``str`` (the default), ``int``, ``float`` or ``bool``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..servers.core.errors import InvalidInputError

__all__ = ["parse_schema", "concise_schema", "CONCISE_TYPES"]

CONCISE_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
                 "number": "number", "bool": "boolean", "boolean": "boolean"}
_FIELD = re.compile(r"^(?P<name>[A-Za-z_][\w-]*)(?:\s+(?P<type>\w+))?\s*(?::\s*(?P<description>.*))?$", re.DOTALL)


def concise_schema(text: str) -> dict[str, Any]:
    """The object schema the concise form ``text`` describes.

    Raises:
        InvalidInputError: a field that does not read ``NAME [TYPE][: DESCRIPTION]``, or an unknown type.
    """
    separator = "\n" if "\n" in text.strip() else ","
    properties: dict[str, Any] = {}
    for raw in text.split(separator):
        item = raw.strip()
        if not item:
            continue
        match = _FIELD.match(item)
        if not match:
            raise InvalidInputError(f"schema field {item[:60]!r} does not read NAME [TYPE][: DESCRIPTION], "
                                    "e.g. 'age int: years since birth'")
        kind = (match.group("type") or "str").lower()
        if kind not in CONCISE_TYPES:
            raise InvalidInputError(f"schema field {match.group('name')!r} has unknown type {kind!r}; use "
                                    "str, int, float or bool")
        prop: dict[str, Any] = {"type": CONCISE_TYPES[kind]}
        if match.group("description"):
            prop["description"] = match.group("description").strip()
        properties[match.group("name")] = prop
    if not properties:
        raise InvalidInputError("the schema is empty: give a JSON Schema or fields such as 'name, age int'")
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _check(schema: Any, origin: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{origin} must be a JSON Schema object, got {type(schema).__name__}")
    import jsonschema
    import jsonschema.validators

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInputError(f"{origin} is not a valid JSON Schema: {exc.message}") from exc
    return schema


def parse_schema(value: Any, *, allow_files: bool = False) -> dict[str, Any]:
    """A JSON Schema from ``value``: a dict, JSON text, a file path (when ``allow_files``), or the concise form.

    Raises:
        InvalidInputError: none of these forms, or not a valid JSON Schema.
    """
    if isinstance(value, dict):
        return _check(value, "the schema")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("the schema is empty: give a JSON Schema or fields such as 'name, age int'")
    text = value.strip()
    if allow_files and not text.startswith(("{", "[")):
        path = Path(text).expanduser()
        if path.is_file():
            try:
                content = path.read_text(encoding="utf-8")
                return _check(json.loads(content), f"schema file {path}")
            except (OSError, json.JSONDecodeError) as exc:
                raise InvalidInputError(f"cannot read schema file {path}: {exc}") from exc
    if text.startswith(("{", "[")):
        try:
            return _check(json.loads(text), "the schema")
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"the schema is not valid JSON: {exc}") from exc
    return concise_schema(text)
