"""The form that asks for a workflow's missing inputs, generated from its typed inputs."""

from __future__ import annotations

import json

from bot.errors import NotPermitted
from bot.runtime.catalog import check_may_run
from cards.model import Form, action_id
from engine.inputs import InputError, resolve_inputs
from engine.loader import LoadedWorkflow
from handlers.input_fields import input_field
from handlers.services import Services
from handlers.types import FieldErrors, Reply, Submission


def missing_only(exc: InputError) -> bool:
    """Whether every problem is a missing required input (then a form helps)."""
    return all(why.startswith("required") for why in exc.problems.values())


def run_form(loaded: LoadedWorkflow, given: dict[str, str]) -> Form:
    """A form for every input of the workflow, prefilled with defaults and what was already given."""
    spec = loaded.spec
    fields = tuple(input_field(name, inp, given.get(name)) for name, inp in spec.inputs.items())
    return Form(
        form_id=action_id("form", "run", spec.name),
        title=f"Run {spec.name}"[:24],
        fields=fields,
        submit="Run",
        state=json.dumps({"workflow": spec.name}),
        intro=spec.description or "",
    )


async def submit_run_form(sub: Submission, workflow: str, svc: Services) -> Reply:
    """Start the run from a submitted form, or send the form back with per-field errors."""
    from handlers.workflow import start

    loaded = svc.catalog.find(workflow)
    try:
        check_may_run(loaded, sub.who, sub.where)
    except NotPermitted as exc:
        return FieldErrors({next(iter(loaded.spec.inputs), "_"): str(exc)})
    raw = {k: v for k, v in sub.values.items() if v is not None and str(v).strip() != ""}
    try:
        resolve_inputs(loaded.spec, raw)
    except InputError as exc:
        return FieldErrors({name: why for name, why in exc.problems.items()})
    return await start(svc, loaded, raw, sub.who, sub.where)
