"""Evaluation of a parsed tree against contexts, with GitHub's property access, filters and operators.

Each tree is turned once into nested Python closures (no ``eval``), cached with the parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.expr.access import MISSING, Filtered, Fn, Run, lookup, star, step
from engine.expr.coerce import equals, greater, less, string_to_number, truthy, upper
from engine.expr.errors import MAX_RESULT, ExpressionError, FunctionFailed
from engine.expr.functions import IMPLS
from engine.expr.nodes import Access, Call, Compare, Ctx, Lit, Logic, Node, Not, Star

__all__ = ["Filtered", "Fn", "Run", "compiled"]


def compiled(tree: Node) -> Fn:
    """The closure that evaluates ``tree`` (cached by the caller, per expression text)."""
    return _compile(tree)


def _compile(node: Node) -> Fn:
    if isinstance(node, Lit):
        value = node.value
        return lambda run: value
    if isinstance(node, Ctx):
        name = node.name
        return lambda run: lookup(run.contexts, name)
    if isinstance(node, Access):
        return _access(node)
    if isinstance(node, Not):
        inner = _compile(node.operand)
        return lambda run: not truthy(inner(run))
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, Logic):
        return _logic(node)
    return _call(node)


def _access(node: Access) -> Fn:
    if isinstance(node.base, Ctx) and all(isinstance(k, Lit) and isinstance(k.value, str) for k in node.keys):
        return _names_access(node.base.name, tuple(str(k.value) for k in node.keys if isinstance(k, Lit)))
    base = _compile(node.base)
    steps: list[tuple[str, Any]] = []
    for key in node.keys:
        if isinstance(key, Star):
            steps.append(("*", None))
        elif isinstance(key, Lit) and isinstance(key.value, str):
            steps.append(("name", key.value))
        else:
            steps.append(("expr", _compile(key)))
    plan = tuple(steps)

    def access(run: Run) -> Any:
        value = base(run)
        for kind, key in plan:
            if kind == "*":
                value = star(value, run)
                continue
            index = key(run) if kind == "expr" else key
            value = step(value, index, run)
        return value

    return access


def _names_access(root: str, names: tuple[str, ...]) -> Fn:
    """The common case ``inputs.env`` or ``steps.build.outputs.version``: a context and names."""

    def access(run: Run) -> Any:
        try:  # exact keys all the way down: plain subscripts
            value = run.contexts[root]
            for name in names:
                value = value[name]
            return value
        except (KeyError, TypeError, IndexError):
            pass
        return slow(run)

    def slow(run: Run) -> Any:
        contexts = run.contexts
        value = contexts.get(root, MISSING)
        if value is MISSING:
            value = lookup(contexts, root)
        for name in names:
            if type(value) is dict:
                found = value.get(name, MISSING)
                value = lookup(value, name) if found is MISSING else found
            else:
                value = step(value, name, run)
        return value

    return access


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": equals,
    "!=": lambda a, b: not equals(a, b),
    "<": less,
    ">": greater,
    "<=": lambda a, b: equals(a, b) or less(a, b),
    ">=": lambda a, b: equals(a, b) or greater(a, b),
}


def _compare(node: Compare) -> Fn:
    first = _compile(node.first)
    if len(node.rest) == 1:
        op_name, operand, _ = node.rest[0]
        if op_name in ("==", "!=") and isinstance(operand, Lit) and type(operand.value) is str:
            return _equals_text(first, operand.value, op_name == "==")
        if op_name in _NUMERIC and isinstance(operand, Lit) and type(operand.value) is float:
            return _against_number(first, op_name, operand.value)
        op, right = _OPS[op_name], _compile(operand)

        def compare(run: Run) -> Any:
            a, b = first(run), right(run)
            if type(a) is str or type(b) is str:
                run.spend_text(a, b)
            return op(a, b)

        return compare
    rest = tuple((_OPS[op], _compile(operand)) for op, operand, _ in node.rest)

    def chain(run: Run) -> Any:
        value = first(run)
        for op, operand in rest:
            other = operand(run)
            run.spend_text(value, other)
            value = op(value, other)
        return value

    return chain


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _against_number(left: Fn, op_name: str, literal: float) -> Fn:
    """``x > 0`` and its kin: a number compares directly, anything else by GitHub's coercion."""
    direct, general = _NUMERIC[op_name], _OPS[op_name]

    def compare(run: Run) -> bool:
        value = left(run)
        kind = type(value)
        if kind is float or kind is int:
            return direct(value, literal)
        if kind is str:
            run.spend_text(value)
            return direct(string_to_number(value), literal)  # NaN compares false either way
        return general(value, literal)

    return compare


def _equals_text(left: Fn, literal: str, want: bool) -> Fn:
    """``x == 'text'``, the commonest comparison, with the literal's upper case worked out once."""
    folded = upper(literal)

    def compare(run: Run) -> bool:
        value = left(run)
        if type(value) is str:
            if value == literal:
                return want
            run.spend_text(value)
            return (upper(value) == folded) is want
        return equals(value, literal) is want

    return compare


def _logic(node: Logic) -> Fn:
    args = tuple(_compile(a) for a in node.args)
    stop_when = node.op == "||"

    def logic(run: Run) -> Any:
        value = None
        for arg in args:
            value = arg(run)
            if value is stop_when or (value is not (not stop_when) and truthy(value) is stop_when):
                return value
        return value

    return logic


def _call(node: Call) -> Fn:
    impl = IMPLS[node.name]
    args = tuple(_compile(a) for a in node.args)
    name, pos = node.spelt, node.pos

    def call(run: Run) -> Any:
        values = [a(run) for a in args]
        run.spend(1)
        try:
            result = impl(run, values)
        except FunctionFailed as exc:
            reason = str(exc)
            lead = "" if reason.lower().startswith(name.lower()) else f"{name}(): "
            raise ExpressionError(run.text, lead + reason, pos) from None
        if isinstance(result, str) and len(result) > MAX_RESULT:
            raise ExpressionError(
                run.text, f"{name}() built more than {MAX_RESULT:,} characters (the result size bound)", pos
            )
        return result

    return call
