"""A small JSON value that validates against a JSON Schema: what an emulator replies to a structured-output
request when no ``reply_json`` is scripted (the subset of JSON Schema the vendors' structured outputs accept).

With ``plausible``, the value looks like a model's: enums and numbers vary within their bounds, strings are short
sentences, and a judge's verdict (``winner`` among the keys of ``scores``) names the best-scored answer."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["example_for_schema"]


REASONS = (
    "It answers the question directly, is accurate, and is the clearest of the answers.",
    "It covers every part of the question with a concrete example; the others leave a step out.",
    "The most complete and best organised answer, with no factual errors.",
)


def example_for_schema(schema: Any, *, plausible: bool = False) -> Any:
    """A value that validates against ``schema`` (the subset structured-output schemas use): the smallest one, or
    with ``plausible`` one that reads like a model's answer."""
    if not plausible:
        return _smallest(schema)
    value = _plausible(schema, random.Random(), None)
    if isinstance(value, dict) and isinstance(value.get("scores"), dict) and value["scores"] and "winner" in value:
        best = max(value["scores"], key=lambda name: value["scores"][name])
        enum = ((schema.get("properties") or {}).get("winner") or {}).get("enum")
        if not enum or best in enum:
            value["winner"] = best
    return value


def _plausible(schema: Any, rng: random.Random, name: str | None) -> Any:
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    kind = kind.lower() if isinstance(kind, str) else kind
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {key: _plausible(props.get(key, {}), rng, key) for key in schema.get("required", list(props))}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), min(2, int(schema.get("maxItems", 2))))
        return [_plausible(schema.get("items", {}), rng, name) for _ in range(count)]
    if kind == "string":
        text = rng.choice(REASONS) if name in (None, "reason", "rationale", "explanation", "summary") else (
            f"a {name.replace('_', ' ')}")
        return text.ljust(int(schema.get("minLength", 1)), ".")
    if kind in ("integer", "number"):
        low, high = float(schema.get("minimum", 0)), float(schema.get("maximum", max(10, schema.get("minimum", 0) + 10)))
        value = rng.uniform(low + (high - low) * 0.4, high)
        return int(value) if kind == "integer" else round(value, 1)
    return _smallest(schema)


def _smallest(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _smallest(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        kind = kind.lower()  # Gemini's own schema dialect spells types upper-case (OBJECT, STRING)
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: _smallest(props.get(name, {})) for name in schema.get("required", list(props))}
    if kind == "array":
        return [_smallest(schema.get("items", {})) for _ in range(max(1, schema.get("minItems", 1)))]
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
