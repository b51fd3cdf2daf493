"""Cross-references in a workflow: what each step needs, loops of needs, and what every ``${{ }}`` reads.

These checks read the plain data of the file rather than the validated model, so they still run (and
report) when the file also has errors of shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from jinja2 import Environment, TemplateSyntaxError, nodes

from engine.diagnostics import Issue, Loc, describe, suggest
from engine.expressions import ExpressionError, check, expressions_in
from engine.graph import find_cycle, upstream

# ``approval``: the latest request for changes (feedback, revision), read by the step an approval revises.
_STEP_ROOTS = frozenset({"inputs", "steps", "run", "secrets", "approval"})
_TOP_ROOTS = frozenset({"inputs", "run", "secrets"})
_ONLY_IN = {
    "result": "'result' is only available in the step's own 'outputs:'",
    "item": "'item' and 'index' are only available in a step with 'for_each'",
    "index": "'item' and 'index' are only available in a step with 'for_each'",
}
# Names the run-time sandbox refuses anyway; refusing them here tells the author before the first run.
_INTERNAL = frozenset(
    {"mro", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "f_globals", "tb_frame"}
)
_PARSER = Environment(autoescape=False)  # parses only; evaluation happens in engine.expressions' sandbox


class _Node(NamedTuple):
    needs: tuple[str, ...]


def reference_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Needs that name no step, a loop of needs, and expressions that are invalid or read out of reach."""
    raw_steps = data.get("steps")
    steps: dict[str, Mapping[str, Any]] = {}
    if isinstance(raw_steps, Mapping):
        steps = {k: v for k, v in raw_steps.items() if isinstance(k, str) and isinstance(v, Mapping)}
    issues, graph = _need_issues(steps)
    cycle = find_cycle(graph)
    if cycle:
        message = f"steps form a cycle: {' -> '.join(cycle)}; remove one of these needs"
        issues.append(Issue(("steps", cycle[0]), message, "key"))
    else:
        issues += _revise_issues(steps, graph)
    return issues + _Expressions(data, steps, graph).issues()


def _revise_issues(steps: Mapping[str, Mapping[str, Any]], graph: dict[str, _Node]) -> list[Issue]:
    """An approval's ``revise:`` must name a step it (transitively) needs: that step runs again."""
    issues = []
    for step_id, step in steps.items():
        approval = step.get("approval")
        target = approval.get("revise") if isinstance(approval, Mapping) else None
        if not isinstance(target, str):
            continue
        loc: Loc = ("steps", step_id, "approval", "revise")
        if target not in steps:
            close = suggest(target, list(steps))
            hint = f"did you mean '{close}'?" if close else f"the steps are: {_listing(steps)}"
            issues.append(Issue(loc, f"step '{step_id}' revises '{target}', which is not a step; {hint}"))
        elif target not in upstream(graph, step_id):
            issues.append(
                Issue(
                    loc,
                    f"step '{step_id}' revises '{target}', which it does not need; "
                    f"add '{target}' to its needs (directly or through another step)",
                )
            )
    return issues


def _need_issues(steps: Mapping[str, Mapping[str, Any]]) -> tuple[list[Issue], dict[str, _Node]]:
    issues: list[Issue] = []
    graph: dict[str, _Node] = {}
    for step_id, step in steps.items():
        key = "needs" if "needs" in step else "depends_on"
        raw = step.get(key)
        entries: list[tuple[Loc, object]] = []
        if isinstance(raw, str):
            entries = [(("steps", step_id, key), raw)]
        elif isinstance(raw, list):
            entries = [(("steps", step_id, key, index), need) for index, need in enumerate(raw)]
        kept: list[str] = []
        for loc, need in entries:
            if not isinstance(need, str):
                continue  # the model reports entries that are not text
            if need == step_id:
                issues.append(Issue(loc, f"step '{step_id}' needs itself; remove '{need}' from its needs"))
            elif need not in steps:
                close = suggest(need, list(steps))
                hint = f"did you mean '{close}'?" if close else f"the steps are: {_listing(steps)}"
                issues.append(Issue(loc, f"step '{step_id}' needs '{need}', which is not a step; {hint}"))
            else:
                kept.append(need)
        graph[step_id] = _Node(tuple(kept))
    return issues, graph


class _Expressions:
    """Checks every string holding ``${{`` against the names and steps in reach at its place."""

    def __init__(
        self, data: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]], graph: dict[str, _Node]
    ):
        self.data = data
        self.steps = steps
        self.graph = graph
        inputs, secrets = data.get("inputs"), data.get("secrets")
        self.inputs = [str(k) for k in inputs] if isinstance(inputs, Mapping) else []
        self.secrets = [str(s) for s in secrets] if isinstance(secrets, list) else []
        self._upstream: dict[str, set[str]] = {}

    def issues(self) -> list[Issue]:
        found: list[Issue] = []
        for loc, text in _strings(self.data, ()):
            step_id, roots = self._place(loc)
            owner, field = describe(loc)
            where = f"{owner}, field '{field}'" if owner else f"field '{field}'"
            if text.count("${{") > len(expressions_in(text)):
                found.append(
                    Issue(loc, f"{where}: an expression opened with '${{{{' is never closed with '}}}}'")
                )
            for expression in expressions_in(text):
                problem, tree = _compile(expression, roots)
                if problem:
                    found.append(Issue(loc, f"{where}: {problem}"))
                elif tree is not None:
                    refer = f"{where}: expression '${{{{ {expression} }}}}' reads"
                    found += [Issue(loc, m) for m in self._reads(tree, refer, step_id, loc)]
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
        return None, _STEP_ROOTS if loc[:1] == ("outputs",) else _TOP_ROOTS

    def _reads(self, tree: nodes.Template, refer: str, step_id: str | None, loc: Loc) -> Iterator[str]:
        for name in _attributes(tree, "inputs"):
            if name not in self.inputs:
                close = suggest(name, self.inputs)
                hint = f"did you mean '{close}'?" if close else "declare it under 'inputs:'"
                yield f"{refer} inputs.{name}, which is not declared; {hint}"
        for name in _attributes(tree, "secrets"):
            if name not in self.secrets:
                close = suggest(name, self.secrets)
                fix = f"did you mean '{close}'?" if close else f"add {name} to the 'secrets:' list"
                yield f"{refer} secrets.{name}, which is not declared; {fix}"
        for name in _attributes(tree, "steps"):
            if name not in self.steps:
                close = suggest(name, list(self.steps))
                hint = f"did you mean '{close}'?" if close else f"the steps are: {_listing(self.steps)}"
                yield f"{refer} steps.{name}, which is not a step; {hint}"
            elif step_id is None or (name == step_id and loc[2] == "compensate"):
                continue  # workflow outputs read any step; a compensation reads the step it undoes
            elif name == step_id:
                fix = "use 'result' inside its 'outputs:' instead"
                yield f"step '{step_id}' reads its own steps.{name}; {fix}"
            elif name not in self._reach(step_id):
                yield f"step '{step_id}' reads steps.{name} but does not need it; add '{name}' to its needs"

    def _reach(self, step_id: str) -> set[str]:
        if step_id not in self._upstream:
            self._upstream[step_id] = upstream(self.graph, step_id)
        return self._upstream[step_id]


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        if "${{" in value:
            yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _compile(expression: str, roots: frozenset[str]) -> tuple[str | None, nodes.Template | None]:
    """A problem with the expression in plain words, or None and its parsed tree."""
    try:
        tree: nodes.Template | None = _PARSER.parse("{{ " + expression + " }}")
    except TemplateSyntaxError:
        tree = None  # engine.expressions.check words the syntax error
    if tree is not None:
        internal = _internal_name(tree)
        if internal:
            reason = f"'{internal}' is internal to Python; expressions may only read workflow data"
            return str(ExpressionError(expression, f"refused by the sandbox: {reason}")), None
        names = {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
        for name in sorted(names - roots):
            if name in _ONLY_IN:
                return str(ExpressionError(expression, _ONLY_IN[name])), None
    try:
        check(expression, roots)
    except ExpressionError as exc:
        return str(exc), None
    return None, tree


def _internal_name(tree: nodes.Template) -> str | None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            name = node.args[0].value if isinstance(node.args[0], nodes.Const) else None
        if isinstance(name, str) and (name.startswith("__") or name in _INTERNAL):
            return name
    return None


def _attributes(tree: nodes.Template, root: str) -> list[str]:
    """The names read right after ``root``: ``inputs.env`` and ``inputs['env']`` both give 'env'."""
    found: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and _is_name(node.node, root):
            found.append(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and _is_name(node.node, root)
            and isinstance(node.arg, nodes.Const)
        ):
            found += [node.arg.value] if isinstance(node.arg.value, str) else []
    return list(dict.fromkeys(found))


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def _listing(names: Iterable[str], limit: int = 10) -> str:
    shown = list(names)
    more = f", ... ({len(shown)} in all)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more
