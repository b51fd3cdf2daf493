"""Where a secret may flow, checked at ``validate`` (and so at every load): only where it is not shown.

A secret may go, whole, into a command's ``env``, an http step's ``url``, ``headers`` or ``body``/``json``,
an action's ``with:``, and the workflow's ``env:``. Anywhere else (titles, descriptions, approval
context, notify text, outputs, program arguments, prompts, conditions) it would be shown or leaked,
and it is refused. Anywhere at all, a secret may not be transformed: an expression that passes it to a
function or an operator, indexes it, or reads the whole ``secrets`` context could rebuild the value in
a form the masks do not know (``format``, ``toJSON``, a comparison that reveals it bit by bit).

An ``env`` entry that holds a secret makes ``env.NAME`` a secret too, with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.diagnostics import Issue, Loc, describe
from engine.expr.nodes import Access, Call, Compare, Ctx, Lit, Logic, Node, Not, Star, walk
from engine.expression_checks import expression_strings
from engine.expressions import ExpressionError, expressions_in, parse

_WHOLE = "'${{ secrets.NAME }}'"
PLACES = "a command's env, an http url, headers or body, or an action's with:"
_REASONS = {
    "run": "program arguments are visible to every user of the machine; pass it through 'env' instead",
    "llm": "what an llm step is given goes to the model, whose reply is shown and may repeat the "
    "secret in a form no mask knows",
    "workflow_with": "it becomes an input of the child run, and inputs are shown; "
    "declare the secret in the child workflow instead",
    "if": "a condition on a secret reveals it, one answer at a time",
    "for_each": "fan-out items are shown on the run's card",
    "cwd": "the working directory is shown in error messages",
}
_SHOWN_FIELDS = frozenset({"name", "description", "notify", "approval", "outputs"})


def secret_issues(data: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]) -> list[Issue]:
    """Every ``${{ secrets.X }}`` (or env entry holding one) that is shown or transformed."""
    top = _tainted(data.get("env"), frozenset())
    scopes = {sid: _tainted(step.get("env"), top) | top for sid, step in steps.items()}
    found: list[Issue] = []
    for loc, text in expression_strings(data, ()):
        step_id = loc[1] if len(loc) >= 2 and loc[0] == "steps" and loc[1] in steps else None
        env = scopes[step_id] if isinstance(step_id, str) else top
        owner, field = describe(loc)
        where = f"{owner}, field '{field}'" if owner else f"field '{field}'"
        for expression in _expressions(text):
            tree = _tree(expression)
            if tree is None:
                continue
            problem = _transform(tree, env)
            if problem is not None:
                fix = f"a secret may not be transformed: use it only whole, as {_WHOLE}, in {PLACES}"
                message = f"{where}: expression '${{{{ {expression} }}}}' {problem}; {fix}"
                found.append(Issue(loc, message))
                continue
            read = _whole_read(tree, env)
            if read is not None and not _hidden_place(loc, steps):
                reason = _reason(loc, steps)
                fix = f"a secret may go only in {PLACES}"
                message = f"{where}: '${{{{ {read} }}}}' may not go here: {reason}; {fix}"
                found.append(Issue(loc, message))
    return found


def _expressions(text: str) -> list[str]:
    bare = "${{" not in text
    try:
        return [text.strip()] if bare else [e.strip() for e in expressions_in(text)]
    except ExpressionError:
        return []  # the expression checks report the unclosed ${{


def _tree(expression: str) -> Node | None:
    try:
        return parse(expression).tree
    except ExpressionError:
        return None  # the expression checks report the syntax error


def _tainted(env: Any, known: frozenset[str]) -> frozenset[str]:
    """The names of an ``env:`` mapping whose values read a secret, directly or through env."""
    if not isinstance(env, Mapping):
        return frozenset()
    found: set[str] = set()
    changed = True
    while changed:  # an entry may read an earlier entry that holds a secret
        changed = False
        for name, value in env.items():
            key = str(name)
            if key in found or not isinstance(value, str) or "${{" not in value:
                continue
            trees = [_tree(e) for e in _expressions(value)]
            if any(t is not None and _reads_secret(t, known | found) for t in trees):
                found.add(key)
                changed = True
    return frozenset(found)


def _is_secret_base(node: Node | Star, env: frozenset[str]) -> bool:
    if not isinstance(node, Ctx):
        return False
    name = node.name.lower()
    return name == "secrets" or (name == "env" and bool(env))


def _names_secret(node: Access, env: frozenset[str]) -> bool:
    """Whether ``node``'s first key picks a secret (any key of ``secrets``, a tainted key of ``env``)."""
    assert isinstance(node.base, Ctx)
    if node.base.name.lower() == "secrets":
        return True
    first = node.keys[0]
    if not (isinstance(first, Lit) and isinstance(first.value, str)):
        return True  # a key chosen while the run runs may be any of them
    return first.value.lower() in {name.lower() for name in env}


def _reads_secret(tree: Node, env: frozenset[str]) -> bool:
    for node in walk(tree):
        if isinstance(node, Access) and _is_secret_base(node.base, env) and _names_secret(node, env):
            return True
        if isinstance(node, Ctx) and node.name.lower() == "secrets":
            return True
    return False


def _whole_read(tree: Node, env: frozenset[str]) -> str | None:
    """``secrets.X`` (or a tainted ``env.X``) when that is the whole expression, as it reads."""
    if not (isinstance(tree, Access) and _is_secret_base(tree.base, env) and len(tree.keys) == 1):
        return None
    key = tree.keys[0]
    if not (isinstance(key, Lit) and isinstance(key.value, str)) or not _names_secret(tree, env):
        return None
    assert isinstance(tree.base, Ctx)
    return f"{tree.base.name}.{key.value}"


def _transform(tree: Node, env: frozenset[str]) -> str | None:
    """What the expression does to a secret other than reading it whole, in words; None if nothing."""
    if _whole_read(tree, env) is not None:
        return None
    parents = _parents(tree)
    for node in walk(tree):
        if isinstance(node, Ctx) and _is_secret_base(node, env):
            holder = parents.get(id(node))
            if not isinstance(holder, Access) or holder.base is not node:
                if node.name.lower() == "secrets":
                    return "reads the whole 'secrets' context"
                return f"reads the whole 'env' context, which holds a secret in {_listing(env)}"
            if not _names_secret(holder, env):
                continue
            first = holder.keys[0]
            if not (isinstance(first, Lit) and isinstance(first.value, str)):
                return f"picks a secret chosen while the run runs ({node.name}[...] or {node.name}.*)"
            name = f"{node.name}.{first.value}"
            if len(holder.keys) > 1:
                return f"indexes into {name}"
            return _use(parents.get(id(holder)), holder).format(name=name)
    return None


def _use(parent: Node | Star | None, child: Node) -> str:
    """How ``parent`` uses the secret read by ``child``, with ``{name}`` for the secret."""
    if isinstance(parent, Call):
        return f"passes {{name}} to {parent.spelt}()"
    if isinstance(parent, Compare):
        ops = " ".join(dict.fromkeys(op for op, _, _ in parent.rest))
        return f"compares {{name}} with {ops}"
    if isinstance(parent, Logic):
        return f"combines {{name}} with {parent.op}"
    if isinstance(parent, Not):
        return "negates {name} with !"
    if isinstance(parent, Access):
        return "indexes with {name}" if parent.base is not child else "indexes into {name}"
    return "transforms {name}"


def _parents(tree: Node) -> dict[int, Node | Star]:
    found: dict[int, Node | Star] = {}
    for node in walk(tree):
        for child in _children(node):
            found[id(child)] = node
    return found


def _children(node: Node | Star) -> Iterator[Node | Star]:
    if isinstance(node, Access):
        yield node.base
        yield from node.keys
    elif isinstance(node, Not):
        yield node.operand
    elif isinstance(node, Compare):
        yield node.first
        yield from (n for _, n, _ in node.rest)
    elif isinstance(node, Logic | Call):
        yield from node.args


def _hidden_place(loc: Loc, steps: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a value at ``loc`` goes only where no one sees it."""
    if len(loc) == 2 and loc[0] == "env":
        return True
    owner, rest = _owner(loc, steps)
    if owner is None or not rest:
        return False
    head = rest[0]
    if head == "env":
        return len(rest) == 2
    if head == "http" and len(rest) >= 2:
        part = rest[1]
        if part in ("url", "body"):
            return len(rest) == 2
        return (part == "headers" and len(rest) == 3) or part == "json"
    return head == "with" and "action" in owner


def _owner(loc: Loc, steps: Mapping[str, Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None, Loc]:
    """The step (or its compensation) that holds ``loc``, and the path inside it."""
    if len(loc) < 3 or loc[0] != "steps" or not isinstance(loc[1], str) or loc[1] not in steps:
        return None, ()
    owner: Any = steps[loc[1]]
    rest = loc[2:]
    if rest[:1] == ("compensate",):
        owner, rest = owner.get("compensate"), rest[1:]
    return (owner, rest) if isinstance(owner, Mapping) else (None, ())


def _reason(loc: Loc, steps: Mapping[str, Mapping[str, Any]]) -> str:
    owner, rest = _owner(loc, steps)
    head = str(rest[0]) if rest else str(loc[0]) if loc else ""
    if owner is not None and head == "with" and "workflow" in owner:
        return _REASONS["workflow_with"]
    if head in _REASONS:
        return _REASONS[head]
    if head in _SHOWN_FIELDS or loc[:1] in (("outputs",), ("name",), ("description",)):
        return "this field is shown to people"
    return "this field is shown in the run's records and on its card"


def _listing(names: frozenset[str]) -> str:
    return ", ".join(f"env.{n}" for n in sorted(names))
