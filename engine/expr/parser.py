"""A recursive-descent parser for GitHub's grammar, with GitHub's precedence and depth limit.

Precedence, loosest first: ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``!``, then property access and
indexing on a context, a call or a group. Parsing is cached per expression text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from engine.expr.errors import MAX_DEPTH, ExpressionError
from engine.expr.functions import ARITY, SPELLING
from engine.expr.lexer import Token, tokenize, unexpected
from engine.expr.nodes import Access, Call, Compare, Ctx, Lit, Logic, Node, Not, Star


@dataclass(frozen=True)
class Parsed:
    """One parsed expression: its tree (None when empty) and the contexts it names, in order."""

    text: str
    tree: Node | None
    contexts: tuple[tuple[str, int], ...]


class ParseError(ExpressionError):
    """A syntax error, remembering the context names read before it (an unknown one is reported first)."""

    contexts: tuple[tuple[str, int], ...] = ()


@lru_cache(maxsize=8192)
def parse(text: str) -> Parsed:
    """Parse one expression (without ``${{ }}``); raises ExpressionError for a syntax error."""
    parser = _Parser(text)
    try:
        tree = parser.parse()
    except ExpressionError as exc:
        error = ParseError(exc.expression, exc.reason, exc.position, syntax=True)
        error.contexts = tuple(parser.contexts)
        raise error from None
    return Parsed(text, tree, tuple(parser.contexts))


_Rule = Callable[[], Node]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = tokenize(text)
        self.i = 0
        self.depth = 0
        self.contexts: list[tuple[str, int]] = []

    def parse(self) -> Node | None:
        if self.peek().kind == "end":
            return None
        tree = self.expression()
        if self.peek().kind != "end":
            raise self.error(self.peek())
        return tree

    # -- helpers ----------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def error(self, token: Token, what: str = "Unexpected symbol") -> ExpressionError:
        symbol = "EOF" if token.kind == "end" else _symbol(token)
        return unexpected(self.text, symbol, token.pos, what, hint_key=token.text)

    def end_error(self) -> ExpressionError:
        last = self.tokens[self.i - 1] if self.i else self.peek()
        return unexpected(self.text, _symbol(last), last.pos, "Unexpected end of expression")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(self.peek(), f"Exceeded max expression depth {MAX_DEPTH}")

    # -- grammar ----------------------------------------------------------------------------

    def expression(self) -> Node:
        self.enter()
        try:
            return self.logical("||", self.logical_and)
        finally:
            self.depth -= 1

    def logical_and(self) -> Node:
        return self.logical("&&", self.equality)

    def logical(self, op: str, operand: _Rule) -> Node:
        first = operand()
        if self.peek().kind != op:
            return first
        self.enter()
        args = [first]
        while self.peek().kind == op:
            self.take()
            args.append(operand())
        self.depth -= 1
        return Logic(op, tuple(args))

    def equality(self) -> Node:
        return self.chain(("==", "!="), self.comparison)

    def comparison(self) -> Node:
        return self.chain(("<", "<=", ">", ">="), self.unary)

    def chain(self, ops: tuple[str, ...], operand: _Rule) -> Node:
        first = operand()
        rest: list[tuple[str, Node, int]] = []
        while self.peek().kind in ops:
            token = self.take()
            rest.append((token.kind, operand(), token.pos))
        return Compare(first, tuple(rest)) if rest else first

    def unary(self) -> Node:
        if self.peek().kind == "!":
            token = self.take()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return Not(operand, token.pos)
        return self.postfix()

    def postfix(self) -> Node:
        base, accessible = self.call()
        if not accessible:
            return base
        keys: list[Node | Star] = []
        dotted: list[bool] = []
        entered = 0
        while self.peek().kind in ("[", "."):
            token = self.take()
            if token.kind == "[":
                if self.peek().kind == "*":
                    key: Node | Star = Star(self.take().pos)
                else:
                    key = self.expression()
                if self.peek().kind != "]":
                    raise self.error(self.peek())
                self.take()
            else:
                name = self.peek()
                if name.kind == "name":
                    key = Lit(self.take().text, name.pos)
                elif name.kind == "*":
                    key = Star(self.take().pos)
                else:
                    self.enter()
                    raise self.error(name)
            self.enter()
            entered += 1
            keys.append(key)
            dotted.append(token.kind == ".")
        self.depth -= entered
        return Access(base, tuple(keys), tuple(dotted)) if keys else base

    def call(self) -> tuple[Node, bool]:
        token = self.peek()
        if token.kind != "name":
            return self.primary()
        self.take()
        if self.peek().kind != "(":
            self.contexts.append((token.text, token.pos))
            return Ctx(token.text, token.pos), True
        self.take()
        args: list[Node] = []
        while self.peek().kind != ")":
            args.append(self.expression())
            if self.peek().kind != ")":
                if self.peek().kind != ",":
                    raise self.error(self.peek())
                self.take()
        self.take()
        name = token.text.lower()
        _check_call(self.text, token, name, len(args))
        return Call(name, token.text, tuple(args), token.pos), True

    def primary(self) -> tuple[Node, bool]:
        if self.peek().kind == "end":
            raise self.end_error()
        token = self.take()
        if token.kind in ("number", "string", "bool", "null"):
            return Lit(token.value, token.pos), False
        if token.kind == "(":
            inner = self.expression()
            if self.peek().kind == "end":
                raise self.end_error()
            if self.peek().kind != ")":
                raise self.error(self.peek())
            self.take()
            return inner, True
        raise self.error(token)


def _check_call(text: str, token: Token, name: str, count: int) -> None:
    arity = ARITY.get(name)
    if arity is None:
        error = unexpected(text, token.text, token.pos, "Unrecognized function")
        names = [SPELLING.get(n, n) for n in ARITY]
        close = difflib.get_close_matches(token.text, names, n=1, cutoff=0.6)
        if close:
            error = ExpressionError(
                error.expression, f"{error.reason}. Did you mean '{close[0]}'?", token.pos, True
            )
        raise error
    low, high = arity
    if count < low:
        raise unexpected(text, token.text, token.pos, "Too few parameters supplied")
    if count > high:
        raise unexpected(text, token.text, token.pos, "Too many parameters supplied")
    if name == "case" and count % 2 == 0:
        what = "Even number of parameters supplied, requires an odd number of parameters"
        raise unexpected(text, token.text, token.pos, what)


def _symbol(token: Token) -> str:
    return str(token.value) if token.kind == "string" else token.text
