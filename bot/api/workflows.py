"""``/api/v1/workflows``: list, get (typed inputs, who may run) and validate a posted file."""

from __future__ import annotations

from bot.api.callers import PLACE
from bot.api.context import ApiContext
from bot.api.models import (
    Diagnostic,
    InputInfo,
    Permissions,
    ValidateRequest,
    ValidateResult,
    WorkflowInfo,
    WorkflowList,
)
from bot.api.routing import Call
from bot.identity import Identity, allowed, describe
from engine.loader import LoadedWorkflow, WorkflowError, WorkflowInvalid, load_text
from engine.url_checks import input_host_warnings
from engine.yaml_bounds import size_problem

POSTED = "<posted>"  # the source name load_text gets; diagnostics name the caller's filename instead


class WorkflowEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def index(self, call: Call) -> WorkflowList:
        """Every valid workflow, each saying whether the caller may run it."""
        return WorkflowList(workflows=[info(w, call.who.who) for w in self.ctx.services.workflows()])

    async def get(self, call: Call) -> WorkflowInfo:
        """One workflow by name (a did-you-mean when there is none, as in chat)."""
        return info(self.ctx.services.catalog.find(call.path["name"]), call.who.who)

    async def validate(self, call: Call) -> ValidateResult:
        """Every problem of a posted file, with line and column, as ``switchboard workflow validate``."""
        body: ValidateRequest = call.body
        name = body.filename
        problem = size_problem(body.source)
        if problem is not None:
            return ValidateResult(valid=False, name=None, errors=[_diagnostic(name, *problem)], warnings=[])
        try:
            loaded = load_text(body.source, POSTED)
        except WorkflowInvalid as exc:
            errors = [_diagnostic(name, e.line, e.col, e.message) for e in exc.errors]
            return ValidateResult(valid=False, name=None, errors=errors, warnings=[])
        warnings = [_of(name, w) for w in input_host_warnings(loaded)]
        return ValidateResult(valid=True, name=loaded.spec.name, errors=[], warnings=warnings)


def info(loaded: LoadedWorkflow, who: Identity) -> WorkflowInfo:
    """A workflow as the API shows it: its inputs in their types, and who may run it."""
    spec = loaded.spec
    perms = spec.permissions
    return WorkflowInfo(
        name=spec.name,
        description=spec.description,
        inputs=[
            InputInfo(
                name=name,
                type=inp.type,
                required=inp.required,
                default=inp.default,
                enum=inp.enum,
                description=inp.description,
            )
            for name, inp in spec.inputs.items()
        ],
        permissions=Permissions(run=perms.run, cancel=perms.cancel, rollback=perms.rollback),
        may_run=allowed(perms.run, who, PLACE),
        allowed_to_run=describe(perms.run),
    )


def _of(name: str, error: WorkflowError) -> Diagnostic:
    return _diagnostic(name, error.line, error.col, error.message)


def _diagnostic(name: str, line: int, col: int, message: str) -> Diagnostic:
    return Diagnostic(line=line, col=col, message=message, text=f"{name}:{line}:{col}: {message}")
