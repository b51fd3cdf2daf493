"""Tokens of GitHub Actions' expression language: literals, names, operators and punctuation."""

from __future__ import annotations

import math
from typing import NamedTuple

from engine.expr.coerce import string_to_number
from engine.expr.errors import MAX_LENGTH, ExpressionError

PUNCT = {"(": "(", ")": ")", "[": "[", "]": "]", ",": ",", "*": "*"}
BOUNDARY = frozenset("()[],.!><=&|")
KEYWORDS: dict[str, tuple[str, object]] = {
    "true": ("bool", True),
    "false": ("bool", False),
    "null": ("null", None),
    "NaN": ("number", math.nan),
    "Infinity": ("number", math.inf),
}
# What a Jinja or Python habit is spelt as in GitHub's language.
JINJA_HINTS = {
    "and": "`and` is written `&&`",
    "or": "`or` is written `||`",
    "not": "`not` is written `!`",
    "none": "`none` is written `null`",
    "None": "`None` is written `null`",
    "True": "`True` is written `true`",
    "False": "`False` is written `false`",
    "if": "`x if c else y` is written `c && x || y`",
    "else": "`x if c else y` is written `c && x || y`",
    "in": "`x in list` is written `contains(list, x)`",
    "is": "`x is none` is written `x == null`",
    "|": "Jinja filters (`| join(', ')`) are written as functions: `join(x, ', ')`",
    "=": "`=` compares nothing; equality is written `==`",
    "&": "`&` is written `&&`",
    '"': "strings are written in single quotes: 'text' (a quote inside is doubled: 'it''s')",
    "+": "the language has no arithmetic; use format('{0}{1}', a, b) to join text",
    "-": "the language has no arithmetic",
    "*": "the language has no arithmetic or powers; `*` only filters, as in `steps.*.outcome`",
    "%": "the language has no arithmetic; use format() to build text",
    "~": "`~` is written format('{0}{1}', a, b)",
}


class Token(NamedTuple):
    kind: str  # ( ) [ ] , * . ! != == < <= > >= && || number string bool null name end
    text: str
    value: object
    pos: int


def tokenize(expr: str) -> list[Token]:
    """The tokens of ``expr``; a symbol the language does not have raises ExpressionError."""
    if len(expr) > MAX_LENGTH:
        raise ExpressionError(_short(expr), f"Exceeded max expression length {MAX_LENGTH}", None, True)
    tokens: list[Token] = []
    i, n, last = 0, len(expr), 0
    while i < n:
        last = i  # GitHub places the end of the expression at the last thing read
        c = expr[i]
        if c in " \t\r\n":
            i += 1
            continue
        start = i
        prev = tokens[-1].kind if tokens else ""
        if c in PUNCT:
            tokens.append(Token(c, c, None, i))
            i += 1
        elif c == "." and prev in ("name", "]", ")", "*"):
            tokens.append(Token(".", c, None, i))
            i += 1
        elif c in "!<>=":
            two = expr[i : i + 2]
            if two in ("!=", "<=", ">=", "=="):
                tokens.append(Token(two, two, None, i))
                i += 2
            elif c == "=":
                raise unexpected(expr, expr[i : _word_end(expr, i + 1)], i, absolute=True)
            else:
                tokens.append(Token(c, c, None, i))
                i += 1
        elif c in "&|":
            if expr[i : i + 2] == c * 2:
                tokens.append(Token(c * 2, c * 2, None, i))
                i += 2
            else:
                raise unexpected(expr, expr[i : _word_end(expr, i + 1)], i, hint_key=c, absolute=True)
        elif c == "'":
            i = _string(expr, i, tokens)
        elif "0" <= c <= "9" or c in "+-.":
            i = _number_end(expr, i)
            text = expr[start:i]
            number = string_to_number(text)
            if math.isnan(number):
                hint = "*" if "*" in text else c if c in "+-" else ""
                raise unexpected(expr, text, start, hint_key=hint, absolute=True)
            tokens.append(Token("number", text, number, start))
        else:
            i = _word_end(expr, i + 1)
            text = expr[start:i]
            if prev != "." and text in KEYWORDS:
                kind, value = KEYWORDS[text]
                tokens.append(Token(kind, text, value, start))
            elif _legal_name(text):
                tokens.append(Token("name", text, None, start))
            else:
                raise unexpected(expr, text, start, hint_key=text[0], absolute=True)
    tokens.append(Token("end", "", None, last))
    return tokens


def unexpected(
    expr: str,
    symbol: str,
    pos: int,
    what: str = "Unexpected symbol",
    hint_key: str = "",
    absolute: bool = False,
) -> ExpressionError:
    """GitHub's wording for a symbol out of place, with the GitHub spelling of a Jinja habit.

    Like GitHub, a lexing error counts the position from the start of the expression and a parsing
    error from the start of its line.
    """
    hint = JINJA_HINTS.get(hint_key or symbol)
    column = pos if absolute else pos - _line_start(expr, pos)
    reason = f"{what}: '{symbol}'. Located at position {column + 1} within expression: {expr}"
    return ExpressionError(_short(expr), f"{reason} ({hint})" if hint else reason, pos, syntax=True)


def _line_start(expr: str, pos: int) -> int:
    """Where the line holding ``pos`` starts, counting only line breaks outside string literals."""
    start, quoted = 0, False
    for i, c in enumerate(expr[:pos]):
        if c == "'":
            quoted = not quoted
        elif c == "\n" and not quoted:
            start = i + 1
    return start


def _string(expr: str, i: int, tokens: list[Token]) -> int:
    j, parts = i + 1, []
    while True:
        k = expr.find("'", j)
        if k < 0:
            raise unexpected(expr, expr[i:], i, absolute=True)
        parts.append(expr[j:k])
        if expr[k + 1 : k + 2] == "'":
            parts.append("'")
            j = k + 2
            continue
        tokens.append(Token("string", expr[i : k + 1], "".join(parts), i))
        return k + 1


def _number_end(expr: str, i: int) -> int:
    n = len(expr)
    i += 1
    while i < n and (expr[i] == "." or not (expr[i] in BOUNDARY or expr[i].isspace())):
        i += 1
    return i


def _word_end(expr: str, i: int) -> int:
    n = len(expr)
    while i < n and not (expr[i] in BOUNDARY or expr[i].isspace()):
        i += 1
    return i


def _legal_name(text: str) -> bool:
    first = text[0]
    if not (first == "_" or ("a" <= first <= "z") or ("A" <= first <= "Z")):
        return False
    return all(c in "_-" or ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") for c in text[1:])


def _short(expr: str) -> str:
    return expr if len(expr) <= 200 else expr[:197] + "..."
