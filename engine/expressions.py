"""``${{ ... }}`` expressions, evaluated in Jinja2's sandbox, never with Python's ``eval``.

A string that is exactly one expression keeps the value's type (a list stays a list); a string that
mixes text and expressions renders to text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
ROOTS = ("inputs", "steps", "run", "item", "index", "secrets", "result", "approval", "env_name")


class ExpressionError(ValueError):
    """An expression that cannot be compiled or evaluated; the message is for the workflow author."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"expression '${{{{ {expression} }}}}': {reason}")
        self.expression = expression
        self.reason = reason


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox with every global (range, lipsum, cycler, joiner, namespace, dict) removed."""

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self.globals.clear()

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Keys before attributes: `inputs.items` or `outputs.items` must read the key, not dict.items.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


_ENV = _Env()
_CACHE: dict[str, Any] = {}


def has_expression(text: str) -> bool:
    """Whether ``text`` holds at least one ``${{ }}``."""
    return "${{" in text


def expressions_in(text: str) -> list[str]:
    """The inner text of every ``${{ }}`` in ``text``."""
    return [m.group(1).strip() for m in EXPR.finditer(text)]


def check(expression: str, known_roots: Iterable[str] = ROOTS) -> set[str]:
    """Compile an expression; return the names it reads at top level, or raise ExpressionError."""
    _compiled(expression)
    try:
        tree = _ENV.parse("{{ " + expression + " }}")
    except TemplateSyntaxError as exc:  # pragma: no cover - _compiled already raised
        raise ExpressionError(expression, exc.message or "syntax error") from None
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
    allowed = set(known_roots)
    for name in sorted(names - allowed):
        raise ExpressionError(expression, f"unknown name '{name}'; available: {', '.join(sorted(allowed))}")
    return names


def step_references(expression: str) -> set[str]:
    """The step ids an expression reads through ``steps.<id>``."""
    tree = _ENV.parse("{{ " + expression + " }}")
    found: set[str] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            found.add(node.attr)
    for sub in tree.find_all(nodes.Getitem):
        if isinstance(sub.node, nodes.Name) and sub.node.name == "steps" and isinstance(sub.arg, nodes.Const):
            found.add(str(sub.arg.value))
    return found


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression (the text inside ``${{ }}``) against ``context``."""
    compiled = _compiled(expression)
    try:
        result = compiled(**context)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return result
    except SecurityError as exc:
        raise ExpressionError(expression, f"refused by the sandbox: {exc}") from None
    except UndefinedError as exc:
        message = str(exc)
        if "unsafe" in message:
            raise ExpressionError(expression, f"refused by the sandbox: {message}") from None
        raise ExpressionError(expression, message) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise ExpressionError(expression, f"{type(exc).__name__}: {exc}") from None


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every ``${{ }}`` in a string, list or mapping, keeping types where the whole string is one."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        whole = EXPR.fullmatch(value.strip())
        if whole:
            return evaluate(whole.group(1).strip(), context)
        return EXPR.sub(lambda m: _as_text(evaluate(m.group(1).strip(), context)), value)
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value


def truthy(value: Any) -> bool:
    """How an ``if:`` reads a rendered value: the text 'false', '0' and '' are false too."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compiled(expression: str) -> Any:
    compiled = _CACHE.get(expression)
    if compiled is None:
        if not expression.strip():
            raise ExpressionError(expression, "empty expression")
        try:
            compiled = _ENV.compile_expression(expression, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise ExpressionError(expression, f"syntax error: {exc.message}") from None
        except SecurityError as exc:
            raise ExpressionError(expression, f"refused by the sandbox: {exc}") from None
        if len(_CACHE) < 10_000:
            _CACHE[expression] = compiled
    return compiled
