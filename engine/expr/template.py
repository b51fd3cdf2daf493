"""Finding every ``${{ }}`` in a string, with a tokenizer that skips over string literals.

A ``}}`` inside a quoted string (``${{ format('{0}}}', x) }}``) does not end the expression.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from engine.expr.errors import ExpressionError

OPEN, CLOSE = "${{", "}}"


class Piece(NamedTuple):
    """Literal text (``expression`` False) or the inner text of one ``${{ }}``, with its offset."""

    text: str
    expression: bool
    offset: int  # where the text (or the inner expression) starts in the whole string


@lru_cache(maxsize=8192)
def split(template: str) -> tuple[Piece, ...]:
    """The string cut into text and expressions; an unclosed ``${{`` raises ExpressionError."""
    pieces: list[Piece] = []
    i = 0
    while True:
        start = template.find(OPEN, i)
        if start < 0:
            if i < len(template):
                pieces.append(Piece(template[i:], False, i))
            return tuple(pieces)
        if start > i:
            pieces.append(Piece(template[i:start], False, i))
        inner = start + len(OPEN)
        end = _close(template, inner)
        if end < 0:
            raise ExpressionError(
                template[inner:].strip(),
                "an expression opened with '${{' is never closed with '}}'",
                start,
            )
        pieces.append(Piece(template[inner:end], True, inner))
        i = end + len(CLOSE)


def _close(text: str, i: int) -> int:
    quoted = False
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            quoted = not quoted  # a doubled '' closes and reopens: the same as staying inside
        elif not quoted and text.startswith(CLOSE, i):
            return i
        i += 1
    return -1


def whole(template: str) -> Piece | None:
    """The one expression when the string is exactly ``${{ ... }}`` (spaces around allowed)."""
    pieces = split(template)
    core = [p for p in pieces if p.expression or p.text.strip()]
    if len(core) == 1 and core[0].expression:
        return core[0]
    return None
