"""Discord messages and modals for cards and forms, as Discord API JSON (embeds, components, modals).

Pure functions from ``cards.model`` to dicts; the Discord adapter sends them. This module does not import
discord.py: it only builds JSON, and tests check the JSON with discord.py's own classes.

Limits: embed title 256, description 4,096, 25 fields (name 256, value 1,024), footer 2,048, 6,000 chars
per embed in all; 5 action rows of 5 buttons, label 80, ``custom_id`` 100. What does not fit is cut with
"…" or summed up as "…and N more steps" (the notes about left-out fields and buttons go in the footer).

Platform differences the adapter has to cover:

- Discord buttons have no confirmation dialogs. For a button whose card ``Button`` has a ``Confirm``, the
  adapter answers the click with an ephemeral follow-up asking the question (confirm/deny buttons) and
  acts only on the confirm.
- Modals carry no private metadata, so the caller encodes the form's state into the modal's ``custom_id``.
  A modal holds at most five text inputs and cannot show field errors; the adapter replies with them.
- ``content`` stays empty: the embed carries the card, and embeds never ping, so card text cannot
  mention ``@everyone``.
"""

from __future__ import annotations

from typing import Any

from cards.limits import chunks, clip, fit, is_yes, more_line, take
from cards.mentions import plain, resolve
from cards.model import Button, Card, Field, Form, FormField

Payload = dict[str, Any]

EMBED_TOTAL = 6_000
TITLE_MAX = 256
DESCRIPTION_MAX = 4_096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1_024
FOOTER_MAX = 2_048
FOOTER_NOTES = 60  # room kept in the footer for "…and N more fields · …and N more buttons"
AUTHOR_MAX = 256
STEP_LINE_MAX = 300
ROWS_MAX = 5
ROW_BUTTONS = 5
LABEL_MAX = 80
CUSTOM_ID_MAX = 100
MODAL_TITLE_MAX = 45
MODAL_INPUTS = 5
INPUT_LABEL_MAX = 45
INPUT_VALUE_MAX = 4_000
PLACEHOLDER_MAX = 100
EMPTY = "\u200b"  # Discord refuses empty field names; a zero-width space is the usual stand-in

COLOURS = {
    "neutral": 0x95A5A6,
    "info": 0x3498DB,
    "success": 0x2ECC71,
    "warning": 0xFFBF00,
    "danger": 0xE74C3C,
}
STATUS_EMOJI = {"neutral": "⚪", "info": "🔵", "success": "🟢", "warning": "🟡", "danger": "🔴"}
BUTTON_STYLES = {"primary": 1, "default": 2, "danger": 4}  # Discord: primary, secondary, danger


def render_message(card: Card) -> Payload:
    """``{"content", "embeds", "components"}`` for a card, cut to Discord's limits."""
    return _mentions(_render_message(card))


def _mentions(payload: Payload) -> Payload:
    """People's markers drawn as Discord mentions where Discord draws them (an embed's description and
    field values); as "@name" in titles, authors, footers and labels, which show ``<@id>`` as typed."""
    for embed in payload["embeds"]:
        for key in ("title", "description"):
            if key in embed:
                embed[key] = resolve(embed[key], "discord" if key == "description" else None)
        for part in ("author", "footer"):
            if part in embed:
                key = "name" if part == "author" else "text"
                embed[part][key] = plain(embed[part][key])
        for field in embed.get("fields", ()):
            field["name"], field["value"] = plain(field["name"]), resolve(field["value"], "discord")
    for row in payload["components"]:
        for button in row["components"]:
            button["label"] = plain(button["label"])
    return payload


def _render_message(card: Card) -> Payload:
    embed: Payload = {"color": COLOURS.get(card.colour, COLOURS["neutral"])}
    if card.title:
        embed["title"] = clip(card.title, TITLE_MAX)
    if card.status:
        embed["author"] = {"name": clip(f"{STATUS_EMOJI.get(card.colour, '⚪')} {card.status}", AUTHOR_MAX)}
    context = clip(" · ".join(card.context), FOOTER_MAX - FOOTER_NOTES)
    room = EMBED_TOTAL - len(embed.get("title", "")) - len(embed.get("author", {}).get("name", ""))
    room -= len(context) + FOOTER_NOTES
    lines = [clip(f"{s.icon} {s.name}  {s.detail}".rstrip(), STEP_LINE_MAX) for s in card.steps]
    need = len(card.text) + sum(len(line) + 1 for line in lines) + 2
    fields = _fields(card.fields, max(room - need, room // 2) if card.text or lines else room)
    if fields:
        embed["fields"] = fields
    used = sum(len(f["name"]) + len(f["value"]) for f in fields)
    description = _description(card.text, lines, min(DESCRIPTION_MAX, room - used))
    if description:
        embed["description"] = description
    buttons, more_buttons = take(card.buttons, ROWS_MAX * ROW_BUTTONS, "buttons", line_takes_a_slot=False)
    notes = [context] if context else []
    if len(fields) < len(card.fields):
        notes.append(more_line(len(card.fields) - len(fields), "fields"))
    notes += [more_buttons] if more_buttons else []
    if notes:
        embed["footer"] = {"text": " · ".join(notes)}
    rows = [{"type": 1, "components": [_button(b) for b in row]} for row in chunks(buttons, ROW_BUTTONS)]
    return {"content": "", "embeds": [embed], "components": rows}


def _fields(fields: tuple[Field, ...], room: int) -> list[Payload]:
    out: list[Payload] = []
    used = 0
    for field in fields[:FIELDS_MAX]:
        name = clip(field.label, FIELD_NAME_MAX) or EMPTY
        value = clip(field.value, FIELD_VALUE_MAX) or "—"
        if used + len(name) + len(value) > room:
            break
        out.append({"name": name, "value": value, "inline": field.short})
        used += len(name) + len(value)
    return out


def _description(text: str, lines: list[str], room: int) -> str:
    steps_need = sum(len(line) + 1 for line in lines)
    text = clip(text, max(room - steps_need - 2, room // 2) if lines else room)
    kept, note = fit(lines, room - len(text) - (2 if text else 0), "steps")
    steps = "\n".join(kept + ([note] if note else []))
    return "\n\n".join(part for part in (text, steps) if part)


def _button(button: Button) -> Payload:
    if len(button.action_id) > CUSTOM_ID_MAX:
        raise ValueError(f"action_id longer than Discord's {CUSTOM_ID_MAX} chars: {button.action_id[:40]}…")
    return {
        "type": 2,
        "style": BUTTON_STYLES.get(button.style, 2),
        "label": clip(button.label, LABEL_MAX) or "…",
        "custom_id": button.action_id,
    }


def render_modal(form: Form) -> Payload:
    """A Discord modal of at most five text inputs (``custom_id`` = field name).

    Forms with more than five fields keep every required field and then optional ones in form order; the
    names left out are listed under ``"truncated"``, which the caller pops before sending (and fills those
    fields with their defaults). More than five required fields cannot be asked for: ValueError.
    """
    required = [f for f in form.fields if f.required]
    if len(required) > MODAL_INPUTS:
        raise ValueError(f"{form.form_id!r} has {len(required)} required fields; a Discord modal takes 5")
    if len(form.form_id) > CUSTOM_ID_MAX:
        raise ValueError(f"form_id longer than Discord's {CUSTOM_ID_MAX} chars")
    chosen = {f.name for f in (required + [f for f in form.fields if not f.required])[:MODAL_INPUTS]}
    shown = [f for f in form.fields if f.name in chosen]
    modal: Payload = {
        "title": clip(form.title, MODAL_TITLE_MAX) or "…",
        "custom_id": form.form_id,
        "components": [{"type": 1, "components": [_text_input(f)]} for f in shown],
    }
    if len(shown) < len(form.fields):
        modal["truncated"] = [f.name for f in form.fields if f.name not in chosen]
    return modal


def _text_input(field: FormField) -> Payload:
    if len(field.name) > CUSTOM_ID_MAX:
        raise ValueError(f"field name longer than Discord's {CUSTOM_ID_MAX} chars: {field.name[:40]}…")
    element: Payload = {
        "type": 4,
        "custom_id": field.name,
        "style": 2 if field.kind == "multiline" else 1,
        "label": clip(field.label, INPUT_LABEL_MAX) or clip(field.name, INPUT_LABEL_MAX),
        "required": field.required,
    }
    default = field.default
    if field.kind == "boolean" and default is not None:
        default = "yes" if is_yes(default) else "no"
    if default:
        element["value"] = clip(default, INPUT_VALUE_MAX)
    placeholder = _placeholder(field)
    if placeholder:
        element["placeholder"] = placeholder
    return element


def _placeholder(field: FormField) -> str:
    # Text inputs are the only safe modal component here, so selects and booleans list their choices.
    choices = {
        "select": f"One of: {', '.join(field.options)}",
        "boolean": "yes or no",
        "number": "A number",
    }.get(field.kind, "")
    text = f"{field.help} ({choices})" if field.help and choices else field.help or choices
    return clip(text, PLACEHOLDER_MAX)
