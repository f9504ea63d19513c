"""A small JSON value that validates against a JSON Schema: what an emulator replies to a structured-output
request when no ``reply_json`` is scripted (the subset of JSON Schema the vendors' structured outputs accept)."""

from __future__ import annotations

from typing import Any

__all__ = ["example_for_schema"]


def example_for_schema(schema: Any) -> Any:
    """A small value that validates against ``schema`` (the subset structured-output schemas use)."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example_for_schema(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        kind = kind.lower()  # Gemini's own schema dialect spells types upper-case (OBJECT, STRING)
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: example_for_schema(props.get(name, {})) for name in schema.get("required", list(props))}
    if kind == "array":
        return [example_for_schema(schema.get("items", {})) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}
