"""``${{ ... }}`` expressions in GitHub Actions' language, parsed and evaluated by ``engine.expr``.

``evaluate`` reads one expression (without ``${{ }}``); ``render`` fills every ``${{ }}`` of a string,
list or mapping. A string that is exactly one expression keeps the value's type (a list stays a
list); a string that mixes text and expressions renders to text. Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NoReturn

from engine.expr.coerce import to_text, truthy
from engine.expr.errors import MAX_RESULT, ExpressionError
from engine.expr.evaluate import Filtered, Fn, Run, compiled
from engine.expr.lexer import unexpected
from engine.expr.nodes import Call, walk
from engine.expr.parser import Parsed, ParseError, parse
from engine.expr.template import split, whole

__all__ = [
    "ROOTS",
    "STATUS_FUNCTIONS",
    "ExpressionError",
    "calls_status",
    "evaluate",
    "expressions_in",
    "has_expression",
    "parse",
    "render",
    "text_truthy",
    "truthy",
]  # fmt: skip

ROOTS = ("inputs", "steps", "run", "item", "index", "secrets", "result", "approval", "env")
STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})
_SAFE_INT = 2**53


@lru_cache(maxsize=8192)
def _program(text: str) -> tuple[Parsed, Fn | None]:
    parsed = parse(text)
    return parsed, compiled(parsed.tree) if parsed.tree is not None else None


@lru_cache(maxsize=8192)
def _fast(text: str) -> tuple[tuple[str, ...], Fn | None]:
    parsed, program = _program(text)
    return tuple(name for name, _ in parsed.contexts), program


def evaluate(
    text: str, contexts: Mapping[str, Any], status: str = "success", files_root: str | None = None
) -> Any:
    """Evaluate one expression (the text inside ``${{ }}``) against ``contexts``.

    ``status`` is what the status functions see ('success', 'failure' or 'cancelled');
    ``files_root`` is the folder hashFiles() reads. Raises ExpressionError.
    """
    try:
        names, program = _fast(text)
    except ParseError as exc:
        _check_names(exc.contexts, contexts, text)
        raise
    for name in names:
        if name not in contexts:
            _check_names(_program(text)[0].contexts, contexts, text)
            break
    if program is None:
        return None
    try:
        value = program(Run(contexts, status, files_root, text))
    except RecursionError:  # pragma: no cover - the depth bound keeps trees shallow
        raise ExpressionError(text, "the expression nests too deeply to evaluate") from None
    kind = type(value)
    if kind is bool or kind is str or value is None:
        return value
    return _export(value)


def _check_names(names: tuple[tuple[str, int], ...], contexts: Mapping[str, Any], text: str) -> None:
    for name, pos in names:
        if name in contexts:
            continue
        folded = name.lower()
        if not any(isinstance(k, str) and k.lower() == folded for k in contexts):
            raise unexpected(text, name, pos, "Unrecognized named-value")


def _export(value: Any, depth: int = 0) -> Any:
    """Plain Python data: filters become lists, whole numbers below 2**53 become ints."""
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is int:
        return value
    if kind is float:
        if value.is_integer() and abs(value) < _SAFE_INT:
            return int(value)
        return value
    if depth > 64:
        return value
    if isinstance(value, Filtered) or type(value) is list:
        return [_export(v, depth + 1) for v in value]
    if type(value) is dict:
        return {k: _export(v, depth + 1) for k, v in value.items()}
    return value


def has_expression(text: str) -> bool:
    """Whether ``text`` holds at least one ``${{ }}``."""
    return "${{" in text


def expressions_in(text: str) -> list[str]:
    """The inner text of every ``${{ }}`` in ``text``; an unclosed one raises ExpressionError."""
    return [p.text.strip() for p in split(text) if p.expression]


@lru_cache(maxsize=4096)
def calls_status(text: str) -> bool:
    """Whether an ``if:`` calls success(), failure(), always() or cancelled() (then it decides alone)."""
    try:
        inner = expressions_in(text) if "${{" in text else [text]
        trees = [parse(t).tree for t in inner]
    except ExpressionError:
        return False
    return any(
        isinstance(n, Call) and n.name in STATUS_FUNCTIONS for t in trees if t is not None for n in walk(t)
    )


def condition(
    text: str, contexts: Mapping[str, Any], status: str = "success", files_root: str | None = None
) -> bool:
    """An ``if:``: a bare expression, or one ``${{ }}``, or text with ``${{ }}`` (true unless empty)."""
    if "${{" not in text:
        return truthy(evaluate(text, contexts, status, files_root))
    return truthy(render(text, contexts, status, files_root))


@lru_cache(maxsize=8192)
def _template(text: str) -> tuple[str | None, tuple[tuple[str, Fn | None] | str, ...], frozenset[str]]:
    """A string's single whole expression, or its pieces compiled, and the context names it reads."""
    one = whole(text)
    if one is not None:
        return one.text.strip(), (), frozenset()
    parts: list[tuple[str, Fn | None] | str] = []
    names: set[str] = set()
    for piece in split(text):
        if piece.expression:
            parsed, program = _program(piece.text.strip())
            names.update(name for name, _ in parsed.contexts)
            parts.append((piece.text.strip(), program))
        else:
            parts.append(piece.text)
    return None, tuple(parts), frozenset(names)


def render(
    value: Any, context: Mapping[str, Any], status: str = "success", files_root: str | None = None
) -> Any:
    """Render every ``${{ }}`` in a string, list or mapping, keeping types where the whole string is one."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        try:
            one, parts, names = _template(value)
        except ExpressionError:
            return _render_slowly(value, context, status, files_root)
        if one is not None:
            return evaluate(one, context, status, files_root)
        for name in names:
            if name not in context:
                return _render_slowly(value, context, status, files_root)  # words the unknown name
        run = Run(context, status, files_root, "")
        out: list[str] = []
        size = 0
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                size += len(part)
                continue
            run.text, program = part
            if program is not None:
                got = program(run)
                text = got if type(got) is str else _as_text(_export(got))
                out.append(text)
                size += len(text)
                if size > MAX_RESULT:
                    _too_long(run.text)
        return "".join(out)
    if isinstance(value, list):
        return [render(v, context, status, files_root) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context, status, files_root) for k, v in value.items()}
    return value


def _render_slowly(value: str, context: Mapping[str, Any], status: str, files_root: str | None) -> str:
    out: list[str] = []
    size = 0
    for piece in split(value):
        text = (
            _as_text(evaluate(piece.text.strip(), context, status, files_root))
            if piece.expression
            else piece.text
        )
        out.append(text)
        size += len(text)
        if size > MAX_RESULT:
            _too_long(piece.text.strip())
    return "".join(out)


def _too_long(expression: str) -> NoReturn:
    """Each expression is bounded on its own; this bounds the text they fill together."""
    raise ExpressionError(
        expression[:200],
        f"the string it fills would be longer than {MAX_RESULT:,} characters (the result size bound)",
    )


def text_truthy(value: Any) -> bool:
    """A yes/no field's rendered value: GitHub's truthiness, and the text 'false' or '0' is false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return truthy(value)


def _as_text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return to_text(value)
