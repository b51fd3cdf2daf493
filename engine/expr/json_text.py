"""JSON for toJSON() and fromJSON(): GitHub's pretty printing, and parsing as JavaScript does."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from engine.expr.coerce import js_number_text, to_text
from engine.expr.errors import MAX_JSON_DEPTH, MAX_RESULT, FunctionFailed, State


def to_json(value: Any, st: State | None = None, depth: int = 0, pad: str = "") -> str:
    """JSON as GitHub's toJSON writes it: pretty, two spaces, numbers as JavaScript writes them."""
    if depth > MAX_JSON_DEPTH:
        raise FunctionFailed(f"toJSON() met data nested deeper than {MAX_JSON_DEPTH} levels")
    if st is not None:
        st.spend(1)
    if value is None or value is True or value is False:
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return "null" if math.isnan(number) or math.isinf(number) else js_number_text(number)
    if isinstance(value, str):
        if st is not None:
            st.spend(len(value) // 16)  # long text costs work too, so the result stays bounded
        return json.dumps(value, ensure_ascii=False)
    inner = pad + "  "
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        parts = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {to_json(v, st, depth + 1, inner)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(parts) + "\n" + pad + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + to_json(v, st, depth + 1, inner) for v in value) + "\n" + pad + "]"
    return json.dumps(str(value), ensure_ascii=False)


def to_json_call(st: State, args: list[Any]) -> Any:
    text = to_json(args[0], st)
    if len(text) > MAX_RESULT:
        raise FunctionFailed(
            f"toJSON() built {len(text):,} characters; the result size bound is {MAX_RESULT:,}"
        )
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def from_json(st: State, args: list[Any]) -> Any:
    text = to_text(args[0])
    if not text.strip(" \t\n\r"):
        raise FunctionFailed("fromJSON() was given empty input; it needs JSON text such as '{\"a\": 1}'")
    st.spend(len(text) // 16 + 1)
    if _nesting(text) > MAX_JSON_DEPTH:
        raise FunctionFailed(f"fromJSON() was given JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=float, object_pairs_hook=_pairs)
    except ValueError as exc:
        raise FunctionFailed(f"Error parsing JSON when evaluating fromJSON: {exc}") from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as GitHub reads it: a repeated key keeps its last value, and of keys that differ
    only in case the first is kept (property names ignore case)."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in pairs:
        if key in out:
            out[key] = value
        elif key.lower() not in seen:
            seen.add(key.lower())
            out[key] = value
    return out


def _nesting(text: str) -> int:
    depth = deepest = 0
    quoted = escaped = False
    for c in text:
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest
