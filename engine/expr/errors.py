"""The one error every expression problem raises, and the bounds that keep an expression cheap."""

from __future__ import annotations

from typing import Protocol

MAX_LENGTH = 21_000  # characters in one expression (GitHub's own limit)
MAX_DEPTH = 50  # nesting of groups, operators and property accesses (GitHub's own limit)
MAX_WORK = 1_000_000  # items visited by filters, functions and comparisons in one evaluation
MAX_RESULT = 1_000_000  # characters of a string, or items of a list, that one evaluation may build
MAX_JSON_DEPTH = 200  # nesting of arrays and objects that fromJSON reads and toJSON writes


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message is for the workflow author.

    ``position`` is the 0-based offset of the problem inside the expression text (None when the
    problem is the expression as a whole); ``expression`` is that text and ``reason`` the advice.
    """

    def __init__(
        self, expression: str, reason: str, position: int | None = None, syntax: bool = False
    ) -> None:
        where = f" at column {position + 1}" if position is not None else ""
        lead = f"syntax error{where}: " if syntax else f"error{where}: " if where else ""
        super().__init__(f"expression '${{{{ {expression} }}}}': {lead}{reason}")
        self.expression = expression
        self.reason = reason
        self.position = position
        self.syntax = syntax


class FunctionFailed(ValueError):
    """A function refused its arguments; the evaluator adds the expression and the position."""


class State(Protocol):
    """What a function may read of the evaluation: the run's status, the files' folder, the work budget."""

    status: str
    files_root: str | None

    def spend(self, units: int) -> None: ...
