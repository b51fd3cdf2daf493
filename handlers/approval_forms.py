"""The forms of an approval: the feedback a request for changes needs, and a form approval's typed fields.

Both carry the request in their id (``sb:form:approval:<id>.changes`` / ``.approve``): Discord modals
have no private metadata, and the id alone lets a form opened before a restart still be submitted after.
"""

from __future__ import annotations

from typing import Any

from cards.model import Form, FormField, action_id
from engine.spec import InputSpec
from handlers.input_fields import input_field

FEEDBACK = "feedback"
FEEDBACK_MAX = 3_000


def form_id(approval_id: str, what: str) -> str:
    """The id of an approval's form: ``what`` is "changes" or "approve"."""
    return action_id("form", "approval", f"{approval_id}.{what}")


def changes_form(approval_id: str, title: str, revision: int, max_revisions: int) -> Form:
    """Ask for the feedback that goes back to the ``revise:`` step."""
    if revision >= max_revisions:
        then = f"This is the last revision ({max_revisions}): a request for changes now counts as a reject."
    else:
        then = f"The work goes back with your feedback, and revision {revision + 1} is asked for."
    return Form(
        form_id=form_id(approval_id, "changes"),
        title="Request changes",
        fields=(
            FormField(
                FEEDBACK,
                "What should change?",
                "multiline",
                required=True,
                help="The revised step reads this as approval.feedback.",
            ),
        ),
        submit="Send back",
        intro=f"{title}\n{then}",
    )


def feedback_of(values: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """The submitted feedback, or the field error to show."""
    text = (values.get(FEEDBACK) or "").strip()
    if not text:
        return None, {FEEDBACK: "Say what should change: the revised step gets this text."}
    if len(text) > FEEDBACK_MAX:
        return None, {FEEDBACK: f"Keep it under {FEEDBACK_MAX} characters (this is {len(text)})."}
    return text, {}


def specs(form: dict[str, Any] | None) -> dict[str, InputSpec]:
    """The typed fields a form approval stored (each an ``InputSpec`` as a dict)."""
    return {name: InputSpec.model_validate(data) for name, data in (form or {}).items()}


def approve_form(approval_id: str, title: str, form: dict[str, Any] | None) -> Form:
    """The form a form approval asks to be filled in before it counts as approved."""
    fields = tuple(input_field(name, spec) for name, spec in specs(form).items())
    return Form(
        form_id=form_id(approval_id, "approve"),
        title="Approve",
        fields=fields,
        submit="Approve",
        intro=f"{title}\nApproving records these details; the run's next steps can read them.",
    )


def typed_values(form: dict[str, Any] | None, raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each field's value in its type (defaults for blank optional fields), and an error per bad field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in specs(form).items():
        text = (raw.get(name) or "").strip()
        if not text:
            if spec.required:
                errors[name] = "Required."
            else:
                values[name] = spec.default
            continue
        if spec.enum:  # a select sends text; the enum may hold numbers
            text = next((v for v in spec.enum if str(v) == text), text)
        try:
            values[name] = spec.coerce(text)
        except ValueError as exc:
            errors[name] = str(exc).capitalize()
    return values, errors
