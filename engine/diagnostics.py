"""Pydantic's validation errors rewritten as plain advice, each tied to a place in the workflow data.

An ``Issue`` names a path into the data (``('steps', 'build', 'timeout')``) and which part of that
entry to point at; ``engine.loader`` turns the path into a line and column of the file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from engine.fields import accepted_keys, is_duration, model_at, type_at
from engine.spec import MAX_STEPS, STEP_ID, STEP_KINDS, Step, Workflow

Loc = tuple[str | int, ...]
_WHAT = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list, like [a, b]",
    "dict_type": "a mapping of names to values",
}
_BOUNDS = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most"}
_EXAMPLES = {
    "url": "https://example.com/hook",
    "prompt": "Summarise ...",
    "title": "Deploy to prod?",
    "name": "my-workflow",
    "text": "Deploy finished",
}
_SHORTHANDS = {
    "notify": "text, or a mapping like {text: ..., channel: ...}",
    "wait": "a duration like 10m, or a mapping like {until: ...}",
}


@dataclass(frozen=True)
class Issue:
    """One problem: a path into the workflow data, the advice, and whether to point at key, value or owner."""

    loc: Loc
    message: str
    at: Literal["key", "value", "owner"] = "value"


def issues_from(error: ValidationError, data: Mapping[str, Any]) -> list[Issue]:
    """Every pydantic error as an Issue that says what is wrong and how to fix it."""
    issues: list[Issue] = []
    unions: dict[Loc, list[ErrorDetails]] = {}
    for err in error.errors():
        loc = tuple(err["loc"])
        if err["type"] == "missing":
            issues.append(_missing(loc))
        elif loc[-1:] == ("[key]",):
            message = f"{_subject(loc[:-2])} has the key {loc[-2]!r}, which must be text; put it in quotes"
            issues.append(Issue(loc[:-1], message, "key"))
        elif (found := _in_data(loc, data)) != loc:
            unions.setdefault(found, []).append(err)  # pydantic adds a tag per member of a union
        else:
            issues.extend(_one(loc, err, data))
    for loc, errs in unions.items():
        if len(errs) == 1:
            issues.extend(_one(loc, errs[0], data))
        else:
            kinds = dict.fromkeys(_WHAT.get(e["type"], "a mapping").split(",")[0] for e in errs)
            got = _show(errs[0]["input"])
            issues.append(Issue(loc, f"{_subject(loc)} must be {' or '.join(kinds)}, got {got}"))
    return issues


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def describe(loc: Loc) -> tuple[str, str]:
    """Split a path into its owner ("step 'build'", "input 'env'" or "") and the dotted field inside it."""
    if len(loc) >= 2 and loc[0] in ("steps", "inputs"):
        return f"{'step' if loc[0] == 'steps' else 'input'} '{loc[1]}'", _dotted(loc[2:])
    return "", _dotted(loc)


def _one(loc: Loc, err: ErrorDetails, data: Mapping[str, Any]) -> list[Issue]:
    kind, ctx, got = err["type"], err.get("ctx", {}), err["input"]
    subject = _subject(loc)
    if kind == "extra_forbidden":
        return [_unknown_key(loc, tuple(err["loc"][:-1]), data)]
    if kind == "value_error":
        return _value_error(loc, err, data)
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = suggest(str(got), allowed)
        hint = f"; did you mean '{close}'?" if close else ""
        return [Issue(loc, f"{subject} must be one of {', '.join(allowed)}, got {_show(got)}{hint}")]
    if kind in _WHAT:
        quote = isinstance(got, int | float) and kind == "string_type"
        hint = f'; put it in quotes: "{_show(got)}"' if quote else ""
        return [Issue(loc, f"{subject} must be {_WHAT[kind]}, got {_show(got)}{hint}")]
    if kind in _BOUNDS or kind == "less_than":
        limit = next(iter(ctx.values()))
        return [Issue(loc, f"{subject} must be {_BOUNDS.get(kind, 'less than')} {limit}, got {_show(got)}")]
    if kind in ("model_type", "model_attributes_type"):
        model = model_at(err["loc"])
        keys = ", ".join(STEP_KINDS if model is Step else accepted_keys(model)[:4]) if model else ""
        shape = f"a mapping with keys such as {keys}" if model else "a mapping"
        return [Issue(loc, f"{subject} must be {_SHORTHANDS.get(str(loc[-1]), shape)}, got {_show(got)}")]
    if kind == "too_short" and loc == ("steps",):
        return [Issue(loc, "the workflow has no steps; add at least one under 'steps:'", "key")]
    if kind == "too_long" and loc == ("steps",):
        message = f"a workflow holds at most {MAX_STEPS} steps and this one has {_count(got, ctx)}"
        return [Issue(loc, f"{message}; split it into sub-workflows run by 'workflow:' steps", "key")]
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length", ctx.get("max_length"))
        return [Issue(loc, f"{subject} takes {bound} {limit} items, got {_count(got, ctx)}")]
    if kind == "string_too_long":
        return [Issue(loc, f"{subject} must be at most {ctx['max_length']} characters, got {len(str(got))}")]
    if kind == "string_pattern_mismatch" and loc == ("name",):
        fixed = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(got)).strip("-._") or "my-workflow"
        rule = "must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        return [Issue(loc, f"'name' {rule}, got {_show(got)}; try '{fixed}'")]
    if kind == "string_pattern_mismatch":
        return [Issue(loc, f"{subject} must match the pattern {ctx['pattern']}, got {_show(got)}")]
    return [Issue(loc, f"{subject}: {err['msg']}")]


def _value_error(loc: Loc, err: ErrorDetails, data: Mapping[str, Any]) -> list[Issue]:
    ctx = err.get("ctx", {})
    text = str(ctx["error"]) if "error" in ctx else err["msg"].removeprefix("Value error, ")
    owner, field = describe(loc)
    prefix = f"{owner}: " if owner else ""
    value = _value(loc, data)
    if is_duration(type_at(err["loc"])):
        return [Issue(loc, f"{_subject(loc)} must be a duration like 30s, 10m or 2h, got {_show(value)}")]
    if loc == ("steps",) and isinstance(value, Mapping):
        return _step_ids(value, data)
    is_input = loc[:1] == ("inputs",) and len(loc) == 2 and isinstance(value, Mapping)
    if is_input and "default" in value and not text.startswith("type 'enum'"):
        fix = "change the default, or the input's type or enum"
        return [Issue((*loc, "default"), f"{owner}: the default does not fit: {text}; {fix}")]
    at: Literal["key", "value"] = "key" if isinstance(value, Mapping) else "value"
    if field and f"'{loc[-1]}'" not in text:
        return [Issue(loc, f"{prefix}'{field}': {text}", at)]
    return [Issue(loc, f"{prefix}{text}", at)]


def _missing(loc: Loc) -> Issue:
    owner, field = describe(loc[:-1])
    name = str(loc[-1])
    example = _EXAMPLES.get(name, "...")
    fix = "add at least one step under 'steps:'" if loc == ("steps",) else f"add '{name}: {example}'"
    if not owner and not field:
        return Issue(loc, f"the workflow is missing '{name}'; {fix}", "owner")
    where = f"{owner}: {field}" if owner and field else owner or f"'{field}'"
    return Issue(loc, f"{where} is missing '{name}'; {fix}", "owner")


def _unknown_key(loc: Loc, model_loc: Loc, data: Mapping[str, Any]) -> Issue:
    key = str(loc[-1])
    parent = _value(loc[:-1], data)
    owner, field = describe(loc[:-1])
    if key == "depends_on" and isinstance(parent, Mapping) and "needs" in parent:
        return Issue(loc, f"{owner} has both 'needs' and 'depends_on', which mean the same; keep one", "key")
    place = f"in '{field}' of {owner}" if owner and field else f"in {owner}" if owner else "at the top level"
    if field and not owner:
        place = f"in '{field}'"
    model = model_at(model_loc)
    valid = accepted_keys(model) if model else []
    close = suggest(key, valid)
    hint = f"did you mean '{close}'?" if close else f"valid keys are: {', '.join(valid)}"
    return Issue(loc, f"unknown key '{key}' {place}; {hint}", "key")


def _step_ids(steps: Mapping[Any, Any], data: Mapping[str, Any]) -> list[Issue]:
    bad = [key for key in steps if not isinstance(key, str) or not STEP_ID.match(key)]
    issues = [_step_id(key) for key in bad]
    good = {key: step for key, step in steps.items() if key not in bad}
    try:  # a bad id fails the whole 'steps' mapping; check the other steps without it
        Workflow.model_validate({**data, "steps": good})
    except ValidationError as exc:
        issues += [i for i in issues_from(exc, data) if i.loc[:1] == ("steps",) and len(i.loc) > 1]
    return issues


def _step_id(key: object) -> Issue:
    fixed = re.sub(r"\W", "_", str(key))
    fixed = fixed if STEP_ID.match(fixed) else f"_{fixed}"
    rule = "must start with a letter or _ and hold only letters, digits and _"
    loc: Loc = ("steps", key) if isinstance(key, str | int) else ("steps",)
    return Issue(loc, f"step id {key!r} {rule}; rename it, e.g. '{fixed}'", "key")


def _subject(loc: Loc) -> str:
    owner, field = describe(loc)
    if field:
        return f"{owner}: '{field}'" if owner else f"'{field}'"
    return owner or "the workflow"


def _dotted(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _value(loc: Loc, data: Any) -> Any:
    for part in loc:
        data = data[part]
    return data


def _in_data(loc: Loc, data: Any) -> Loc:
    """The longest start of ``loc`` that exists in the data."""
    for depth, part in enumerate(loc):
        inside = isinstance(data, Mapping) and part in data
        if not inside and not (isinstance(data, list) and isinstance(part, int) and part < len(data)):
            return loc[:depth]
        data = data[part]
    return loc


def _count(got: Any, ctx: dict[str, Any]) -> Any:
    # pydantic 2.14 stopped filling in actual_length for some collections; count the input instead.
    if ctx.get("actual_length") is not None:
        return ctx["actual_length"]
    return len(got) if hasattr(got, "__len__") else "?"
