"""Compact JSON Schemas for ``tools/list``: the same meaning in fewer tokens.

An MCP host sends every tool schema to its model on every turn, so each byte costs context. Pydantic's schemas
carry a ``title`` on every property, spell "optional" as ``anyOf: [X, {"type": "null"}], default: null`` and say
``additionalProperties: true``, which is what JSON Schema assumes anyway. :func:`compact_schema` drops the titles
and that default and writes the nullable form as ``type: [X, "null"]`` - an equivalent schema, so the client's
validation of structured results against it is unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema"]

# Keywords whose value maps names to schemas: their keys are names, never keywords.
_NAME_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def _nullable(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``anyOf: [{"type": T, ...}, {"type": "null"}]`` as ``{"type": [T, "null"], ...}``; None if not that shape."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or {"type": "null"} not in options:
        return None
    other = options[0] if options[1] == {"type": "null"} else options[1]
    if not isinstance(other.get("type"), str) or "anyOf" in other or "$ref" in other:
        return None
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    merged.update(other)
    merged["type"] = [other["type"], "null"]
    return merged


def compact_schema(schema: Any) -> Any:
    """A copy of ``schema`` without titles, ``default: null``, ``additionalProperties: true`` or ``anyOf``-with-null;
    the same instances validate."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = _nullable(schema) or schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties" and value is True:  # the default: any other property is allowed
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    return out
