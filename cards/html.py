"""HTML fragments for the local console: a card as a ``<div class="card">``, a form as a ``<form>``.

The markup lives in Jinja2 templates (``cards/templates``) rendered with autoescaping on, so every piece
of user text is escaped by Jinja2 and none is pasted into HTML by hand. Unlike chat platforms the console
has no size limits: a card shows all its fields, steps and buttons. Buttons carry their action id and
confirmation text in ``data-*`` attributes; the console's script asks before acting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cards.limits import is_yes
from cards.mentions import plain_everywhere
from cards.model import Card, Form, FormField
from cards.run_card import STEP_ICONS

# Templates are read once, at import; rendering afterwards touches no files.
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
_CARD = _ENV.get_template("card.html.j2")
_FORM = _ENV.get_template("form.html.j2")

ICON_NAMES = {icon: status for status, icon in STEP_ICONS.items()}
BOOLEAN_CHOICES = (("true", "Yes"), ("false", "No"))


@dataclass(frozen=True)
class _Input:
    """What the form template needs about one field beyond the field itself."""

    field: FormField
    id: str
    type: str
    choices: tuple[tuple[str, str], ...]
    selected: str | None
    blank: bool
    error: str | None
    described_by: str


def render_html(card: Card) -> str:
    """An escaped HTML fragment showing a card in the console."""
    return _CARD.render(card=plain_everywhere(card), icon_names=ICON_NAMES)


def render_form_html(form: Form) -> str:
    """An escaped HTML ``<form>`` for the console, with the form's errors next to their fields."""
    inputs = [_input(form, f) for f in form.fields]
    names = {f.name for f in form.fields}
    general = [message for name, message in form.errors.items() if name not in names]
    return _FORM.render(form=form, inputs=inputs, general_errors=general)


def _input(form: Form, field: FormField) -> _Input:
    id_ = f"{form.form_id}--{field.name}"
    choices: tuple[tuple[str, str], ...] = ()
    selected = field.default
    if field.kind == "select":
        choices = tuple((o, o) for o in field.options)
    elif field.kind == "boolean":
        # A yes/no select rather than a checkbox: "required" on a checkbox would force it to be ticked.
        choices = BOOLEAN_CHOICES
        selected = None if field.default is None else ("true" if is_yes(field.default) else "false")
    error = form.errors.get(field.name)
    described = [f"{id_}-help"] if field.help else []
    described += [f"{id_}-error"] if error else []
    return _Input(
        field=field,
        id=id_,
        type="number" if field.kind == "number" else "text",
        choices=choices,
        selected=selected,
        blank=not field.required or selected not in {value for value, _ in choices},
        error=error,
        described_by=" ".join(described),
    )
