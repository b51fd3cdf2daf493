"""What every expression in a workflow reads, checked at ``validate``: contexts in reach, declared
inputs and secrets, upstream steps, declared outputs, and typed inputs compared with literals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise
from typing import Any

from engine.background import reads_background
from engine.diagnostics import Issue, Loc, describe, suggest
from engine.expr.coerce import to_text
from engine.expr.nodes import Access, Compare, Ctx, Lit, Node, walk
from engine.expr.template import whole
from engine.expressions import ExpressionError, expressions_in, parse
from engine.graph import HasNeeds, upstream

_STEP_ROOTS = frozenset({"inputs", "steps", "run", "secrets", "approval", "env"})
_TOP_ROOTS = frozenset({"inputs", "run", "secrets"})
_HOOK_ROOTS = frozenset({"event"})  # a webhook's inputs read the payload it was sent
_ONLY_IN = {
    "result": "'result' is only available in the step's own 'outputs:'",
    "item": "'item' and 'index' are only available in a step with 'for_each'",
    "index": "'item' and 'index' are only available in a step with 'for_each'",
}


class ExpressionChecks:
    """Checks every expression (each ``${{ }}``, and a bare ``if:``) against what is in reach at its place."""

    def __init__(
        self, data: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]], graph: Mapping[str, HasNeeds]
    ):
        self.data = data
        self.steps = steps
        self.graph = graph
        inputs, secrets = data.get("inputs"), data.get("secrets")
        self.inputs = [str(k) for k in inputs] if isinstance(inputs, Mapping) else []
        self.input_types: dict[str, str] = {}
        if isinstance(inputs, Mapping):
            for name, spec in inputs.items():
                kind = spec.get("type", "string") if isinstance(spec, Mapping) else "string"
                self.input_types[str(name)] = str(kind)
        self.secrets = [str(s) for s in secrets] if isinstance(secrets, list) else []
        self._upstream: dict[str, set[str]] = {}

    def issues(self) -> list[Issue]:
        found: list[Issue] = []
        for loc, text in expression_strings(self.data, ()):
            step_id, roots = self._place(loc)
            owner, field = describe(loc)
            where = f"{owner}, field '{field}'" if owner else f"field '{field}'"
            bare = "${{" not in text
            try:
                inner = [text] if bare else expressions_in(text)
            except ExpressionError:
                found.append(
                    Issue(loc, f"{where}: an expression opened with '${{{{' is never closed with '}}}}'")
                )
                continue
            if not bare and field == "if" and whole(text) is None:
                fix = "write it as one expression, e.g. ${{ a && b }} or a bare a && b"
                found.append(
                    Issue(
                        loc, f"{where}: text around '${{{{ }}}}' makes a non-empty string, always true; {fix}"
                    )
                )
            for expression in inner:
                try:
                    tree = parse(expression.strip()).tree
                except ExpressionError as exc:
                    found.append(Issue(loc, f"{where}: {exc}"))
                    continue
                if tree is None:
                    if not bare:
                        found.append(Issue(loc, f"{where}: expression '${{{{ }}}}' is empty"))
                    continue
                refer = f"{where}: expression '${{{{ {expression.strip()} }}}}'"
                found += [Issue(loc, m) for m in dict.fromkeys(self._reads(tree, refer, roots, step_id, loc))]
        return found

    def _place(self, loc: Loc) -> tuple[str | None, frozenset[str]]:
        if len(loc) >= 3 and loc[0] == "steps" and isinstance(loc[1], str) and loc[1] in self.steps:
            step = self.steps[loc[1]]
            roots = set(_STEP_ROOTS)
            if step.get("for_each") is not None and loc[2] != "for_each":
                roots |= {"item", "index"}
            if loc[2] == "outputs" and len(loc) == 4:
                roots |= {"result"}
            return loc[1], frozenset(roots)
        if loc[:1] == ("on",):
            return None, _HOOK_ROOTS if loc[:3] == ("on", "webhook", "inputs") else frozenset()
        return None, _STEP_ROOTS if loc[:1] == ("outputs",) else _TOP_ROOTS

    def _reads(
        self, tree: Node, refer: str, roots: frozenset[str], step_id: str | None, loc: Loc
    ) -> Iterator[str]:
        nodes = walk(tree)
        unknown = {n.name.lower() for n in nodes if isinstance(n, Ctx) and n.name.lower() not in roots}
        for node in nodes:
            if isinstance(node, Access) and isinstance(node.base, Ctx) and node.base.name.lower() in unknown:
                continue  # the unknown context is the one thing to fix
            if isinstance(node, Ctx) and node.name.lower() not in roots:
                name = node.name
                if name.lower() in _ONLY_IN:
                    yield f"{refer}: {_ONLY_IN[name.lower()]}"
                    continue
                close = suggest(name, sorted(roots))
                hint = (
                    f"did you mean '{close}'?"
                    if close
                    else f"the contexts here are: {', '.join(sorted(roots))}"
                )
                yield f"{refer}: '{name}' is not a context; {hint}"
            elif isinstance(node, Access) and any(n.startswith("__") for n in _names(node)):
                inner = next(n for n in _names(node) if n.startswith("__"))
                yield f"{refer}: '{inner}' is internal to Python, not workflow data; it is not declared"
            elif isinstance(node, Access) and isinstance(node.base, Ctx):
                yield from self._access(node, refer, step_id, loc)
            elif isinstance(node, Compare):
                yield from self._types(node, refer)

    def _access(self, node: Access, refer: str, step_id: str | None, loc: Loc) -> Iterator[str]:
        assert isinstance(node.base, Ctx)
        root = node.base.name.lower()
        names = _names(node)
        if not names:
            return
        refer += " reads"
        if root == "inputs":
            name = _canon(names[0], self.inputs)
        elif root == "secrets":
            name = _canon(names[0], self.secrets)
        else:
            name = _canon(names[0], self.steps)
        if root == "inputs" and name not in self.inputs:
            close = suggest(name, self.inputs)
            hint = f"did you mean '{close}'?" if close else "declare it under 'inputs:'"
            yield f"{refer} inputs.{name}, which is not declared; {hint}"
        elif root == "secrets" and name not in self.secrets:
            close = suggest(name, self.secrets)
            fix = f"did you mean '{close}'?" if close else f"add {name} to the 'secrets:' list"
            yield f"{refer} secrets.{name}, which is not declared; {fix}"
        elif root == "steps":
            yield from self._step(name, names[1:], refer, step_id, loc)

    def _step(self, name: str, rest: list[str], refer: str, step_id: str | None, loc: Loc) -> Iterator[str]:
        if name not in self.steps:
            close = suggest(name, list(self.steps))
            hint = f"did you mean '{close}'?" if close else f"the steps are: {listing(self.steps)}"
            yield f"{refer} steps.{name}, which is not a step; {hint}"
            return
        rest = [_canon(rest[0], _STEP_FIELDS), *rest[1:]] if rest else rest
        if rest and rest[0] not in _STEP_FIELDS:
            close = suggest(rest[0], sorted(_STEP_FIELDS))
            hint = f"did you mean '{close}'?" if close else f"a step has {', '.join(sorted(_STEP_FIELDS))}"
            yield f"{refer} steps.{name}.{rest[0]}, which a step does not have; {hint}"
        raw = self.steps[name].get("outputs")
        declared: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if self.steps[name].get("for_each") is not None:
            declared = {"items": None}  # a fan-out's outputs are its items' outputs, in order
        if len(rest) >= 2 and rest[0] == "outputs" and declared and _canon(rest[1], declared) not in declared:
            outputs = [str(k) for k in declared]
            close = suggest(rest[1], outputs)
            hint = f"did you mean '{close}'?" if close else f"its outputs are: {', '.join(outputs)}"
            yield f"{refer} steps.{name}.outputs.{rest[1]}, which step '{name}' does not declare; {hint}"
        if step_id is None or (name == step_id and loc[2] == "compensate"):
            return  # workflow outputs read any step; a compensation reads the step it undoes
        if name == step_id:
            yield f"step '{step_id}' reads its own steps.{name}; use 'result' inside its 'outputs:' instead"
        elif self.steps[name].get("background") is True:
            yield reads_background(step_id, name)
        elif name not in self._reach(step_id):
            yield f"step '{step_id}' reads steps.{name} but does not need it; add '{name}' to its needs"

    def _types(self, node: Compare, refer: str) -> Iterator[str]:
        operands = [node.first, *(n for _, n, _ in node.rest)]
        for left, right in pairwise(operands):
            for one, other in ((left, right), (right, left)):
                name = _input_name(one)
                if name is None or not isinstance(other, Lit) or other.value is None:
                    continue
                kind = self.input_types.get(_canon(name, self.input_types), "")
                want = _LITERAL_KINDS.get(kind)
                got = _literal_kind(other.value)
                if want is not None and got not in want:
                    shown = repr(other.value) if isinstance(other.value, str) else to_text(other.value)
                    example = _EXAMPLE_LITERAL.get(kind, "")
                    fix = f"; compare with {example}" if example else ""
                    yield (
                        f"{refer} compares inputs.{name} (type {kind}) with the {got} {shown}, "
                        f"which GitHub's rules coerce and rarely match{fix}"
                    )

    def _reach(self, step_id: str) -> set[str]:
        if step_id not in self._upstream:
            self._upstream[step_id] = upstream(self.graph, step_id)
        return self._upstream[step_id]


def _canon(name: str, choices: Iterable[str]) -> str:
    """The declared spelling of a name read ignoring case, as GitHub reads property names."""
    if name in choices:
        return name
    folded = name.lower()
    return next((c for c in choices if c.lower() == folded), name)


def _names(node: Access) -> list[str]:
    """The property names read one after another from the base (``steps.a.outputs.x``): a, outputs, x."""
    names: list[str] = []
    for key in node.keys:
        if isinstance(key, Lit) and isinstance(key.value, str):
            names.append(key.value)
        else:
            break
    return names


def _input_name(node: Node) -> str | None:
    if isinstance(node, Access) and isinstance(node.base, Ctx) and node.base.name.lower() == "inputs":
        names = _names(node)
        return names[0] if len(names) == 1 and len(node.keys) == 1 else None
    return None


def _literal_kind(value: object) -> str:
    return "boolean" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "string"


_LITERAL_KINDS = {  # an input's type: the literal kinds it is sensibly compared with
    "string": {"string"}, "text": {"string"}, "enum": {"string", "number", "boolean"},
    "number": {"number"}, "integer": {"number"}, "boolean": {"boolean"},
}  # fmt: skip
_EXAMPLE_LITERAL = {"number": "a number like 3", "integer": "a number like 3", "boolean": "true or false"}
_STEP_FIELDS = frozenset({"outputs", "outcome", "conclusion", "status"})


def expression_strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every string that holds an expression (each ``${{ }}``, and a step's bare ``if:``), with its path."""
    if isinstance(value, str):
        if "${{" in value or (len(loc) == 3 and loc[0] == "steps" and loc[2] == "if"):
            yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from expression_strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from expression_strings(item, (*loc, index))


def listing(names: Iterable[str], limit: int = 10) -> str:
    shown = list(names)
    more = f", ... ({len(shown)} in all)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more
