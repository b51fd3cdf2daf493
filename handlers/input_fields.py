"""Typed inputs (a workflow's inputs, a form approval's fields) as form fields, for every platform."""

from __future__ import annotations

import json
from typing import Any

from cards.model import FieldKind, FormField
from engine.spec import InputSpec

# InputSpec types as form fields: "text" is the multiline string; lists and objects are typed as JSON.
KINDS: dict[str, FieldKind] = {
    "string": "text",
    "text": "multiline",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "enum": "select",
    "list": "multiline",
    "object": "multiline",
}


def input_field(name: str, spec: InputSpec, given: str | None = None) -> FormField:
    """The form field for one typed input, prefilled with what was given, else its default."""
    default = given if given is not None else (None if spec.default is None else as_text(spec.default))
    return FormField(
        name=name,
        label=name.replace("_", " ").capitalize(),
        kind="select" if spec.enum else KINDS[spec.type],
        required=spec.required,
        default=default,
        options=tuple(str(v) for v in spec.enum or ()),
        help=spec.description,
    )


def as_text(value: Any) -> str:
    """A default as the text a form shows: true/false, JSON for lists and objects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
