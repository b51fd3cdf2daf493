"""GitHub's functions: contains, startsWith, endsWith, format, join, toJSON, fromJSON, case,
hashFiles and the status functions success(), failure(), always() and cancelled()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.expr.coerce import equals, is_primitive, to_text, upper
from engine.expr.errors import MAX_RESULT, FunctionFailed, State
from engine.expr.files import hash_files
from engine.expr.json_text import from_json, to_json_call

# Lower-case name: (fewest, most) arguments. Names are case-insensitive, as on GitHub.
ARITY: dict[str, tuple[int, int]] = {
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "format": (1, 255),
    "join": (1, 2),
    "tojson": (1, 1),
    "fromjson": (1, 1),
    "case": (3, 255),
    "hashfiles": (1, 255),
    "success": (0, 0),
    "failure": (0, 0),
    "always": (0, 0),
    "cancelled": (0, 0),
}
SPELLING = {
    "startswith": "startsWith", "endswith": "endsWith", "tojson": "toJSON",
    "fromjson": "fromJSON", "hashfiles": "hashFiles",
}  # fmt: skip


def _contains(st: State, args: list[Any]) -> Any:
    search, item = args
    _spend_text(st, search, item)
    if is_primitive(search):
        return is_primitive(item) and to_text(item).lower() in to_text(search).lower()
    if isinstance(search, list):
        st.spend(len(search))
        return any(equals(item, v) for v in search)
    return False


def _spend_text(st: State, *values: Any) -> None:
    """Searching long text costs work: a unit per 16 characters."""
    for value in values:
        if type(value) is str and len(value) > 64:
            st.spend(len(value) >> 4)


def _starts(st: State, args: list[Any]) -> Any:
    left, right = args
    _spend_text(st, left, right)
    return (
        is_primitive(left) and is_primitive(right) and upper(to_text(left)).startswith(upper(to_text(right)))
    )


def _ends(st: State, args: list[Any]) -> Any:
    left, right = args
    _spend_text(st, left, right)
    return is_primitive(left) and is_primitive(right) and upper(to_text(left)).endswith(upper(to_text(right)))


def _format(st: State, args: list[Any]) -> Any:
    fmt = to_text(args[0])
    out: list[str] = []
    i, n, size = 0, len(fmt), 0
    while i < n:
        lb, rb = fmt.find("{", i), fmt.find("}", i)
        if lb >= 0 and (rb < 0 or rb > lb):
            if fmt[lb + 1 : lb + 2] == "{":
                out.append(fmt[i : lb + 1])
                i = lb + 2
                continue
            j = lb + 1
            while j < n and "0" <= fmt[j] <= "9":
                j += 1
            if rb > lb + 1 and j > lb + 1:
                index = int(fmt[lb + 1 : j])
                if index + 1 > len(args) - 1:
                    raise FunctionFailed(
                        f"The following format string references more arguments than were supplied: {fmt}"
                    )
                piece = fmt[i:lb] + to_text(args[index + 1])
                size += len(piece)
                if size > MAX_RESULT:
                    raise FunctionFailed(
                        f"format() would build more than {MAX_RESULT:,} characters (the result size bound)"
                    )
                out.append(piece)
                i = rb + 1
                continue
            raise FunctionFailed(f"The following format string is invalid: {fmt}")
        if rb >= 0:
            if fmt[rb + 1 : rb + 2] != "}":
                raise FunctionFailed(f"The following format string is invalid: {fmt}")
            out.append(fmt[i : rb + 1])
            i = rb + 2
        else:
            out.append(fmt[i:])
            break
    return "".join(out)


def _join(st: State, args: list[Any]) -> Any:
    items = args[0]
    if is_primitive(items):
        return to_text(items)
    if not isinstance(items, list):
        return ""
    sep = to_text(args[1]) if len(args) > 1 and is_primitive(args[1]) else ","
    st.spend(len(items))
    parts: list[str] = []
    size = -len(sep)
    for v in items:
        part = to_text(v)
        size += len(part) + len(sep)
        if size > MAX_RESULT:
            raise FunctionFailed(
                f"join() would build more than {MAX_RESULT:,} characters (the result size bound)"
            )
        parts.append(part)
    return sep.join(parts)


def _case(st: State, args: list[Any]) -> Any:
    for i in range(0, len(args) - 1, 2):
        if args[i] is not True and args[i] is not False:
            raise FunctionFailed("case predicate must evaluate to a boolean value")
        if args[i]:
            return args[i + 1]
    return args[-1]


def _hash_files(st: State, args: list[Any]) -> Any:
    if st.files_root is None:
        raise FunctionFailed("hashFiles() reads files in the workflow's folder, and this run has none")
    try:
        return hash_files(st.files_root, [to_text(a) for a in args], st.spend)
    except ValueError as exc:
        raise FunctionFailed(str(exc)) from None


IMPLS: dict[str, Callable[[State, list[Any]], Any]] = {
    "contains": _contains,
    "startswith": _starts,
    "endswith": _ends,
    "format": _format,
    "join": _join,
    "tojson": to_json_call,
    "fromjson": from_json,
    "case": _case,
    "hashfiles": _hash_files,
    "success": lambda st, _: st.status == "success",
    "failure": lambda st, _: st.status == "failure",
    "cancelled": lambda st, _: st.status == "cancelled",
    "always": lambda st, _: True,
}
