"""Slack Block Kit for cards and forms: message blocks, the ``text`` fallback, modals and modal errors.

Pure functions from ``cards.model`` to JSON-ready dicts; the Slack adapter sends them. Limits come from the
``slack_sdk/models/blocks`` validators: 50 blocks, header 150, section text 3,000, 10 fields of 2,000 per
section, 10 context elements, 25 buttons of 75 chars, ids 255; modals take a 24-char title and 3,000 chars
of private metadata. Messages over about 13k chars of block text fail with ``msg_blocks_too_long``
(bolt-js #2509), so a card keeps to ``TEXT_BUDGET`` and says what it left out ("…and 38 more steps").

User text in ``mrkdwn`` objects has ``&``, ``<`` and ``>`` escaped, so it cannot form links or mentions
(``<!channel>``); ``plain_text`` objects (header, button labels, modal labels) are never parsed for either,
so they are sent as written.
"""

from __future__ import annotations

from typing import Any

from cards.limits import ELLIPSIS, clip, fit, is_yes, more_line, take
from cards.mentions import plain, resolve
from cards.model import Button, Card, Confirm, Field, Form, FormField

Block = dict[str, Any]

MAX_BLOCKS = 50
TEXT_BUDGET = 12_000
HEADER_MAX = 150
SECTION_MAX = 3_000
FIELD_MAX = 2_000
FIELDS_PER_SECTION = 10
CONTEXT_ITEMS = 10
CONTEXT_ITEM_MAX = 300  # small print: ten of them must not crowd out the steps
STEP_LINE_MAX = 500
ACTIONS_MAX = 25
ACTIONS_TEXT_MAX = 4_000  # labels plus confirm dialogs; a card's buttons must leave room for its body
BUTTON_MAX = 75
ID_MAX = 255
VIEW_TEXT_MAX = 24
METADATA_MAX = 3_000
OPTIONS_MAX = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
LABEL_MAX = 2_000
FALLBACK_MAX = 3_000

# Messages built from blocks have no colour bar (only legacy attachments do), so the colour is an emoji.
STATUS_EMOJI = {"neutral": "⚪", "info": "🔵", "success": "🟢", "warning": "🟡", "danger": "🔴"}


def escape(text: str) -> str:
    """``text`` with the three characters Slack's mrkdwn treats as control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc(text: str, limit: int) -> str:
    # Clip before escaping (never cut an entity in half), then clip harder if escaping made it too long.
    # People's markers become Slack mentions last: a drawn mention is never longer than its marker.
    raw = limit
    out = escape(clip(text, raw))
    while len(out) > limit:
        raw -= len(out) - limit
        out = escape(clip(text, raw))
    return resolve(out, "slack")


def _plain(text: str, limit: int) -> Block:
    # plain_text is never parsed for mentions: people are named "@name" there.
    return {"type": "plain_text", "text": clip(plain(text), limit) or ELLIPSIS, "emoji": True}


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text or ELLIPSIS}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(texts: list[str]) -> Block:
    return {"type": "context", "elements": [_mrkdwn(t) for t in texts]}


def text_length(value: Any) -> int:
    """The characters of text in blocks: every ``text`` string, however deep (what Slack's limit counts)."""
    if isinstance(value, list):
        return sum(text_length(v) for v in value)
    if not isinstance(value, dict):
        return 0
    own = len(value["text"]) if isinstance(value.get("text"), str) else 0
    return own + sum(text_length(v) for v in value.values() if isinstance(v, dict | list))


def render_blocks(card: Card) -> list[Block]:
    """Block Kit blocks for a card, cut to Slack's limits with "…and N more" lines where needed."""
    # A card without a title (a chat reply) is its text alone.
    head: list[Block] = [{"type": "header", "text": _plain(card.title, HEADER_MAX)}] if card.title else []
    if card.status:
        head.append(_context([f"{STATUS_EMOJI.get(card.colour, '⚪')} *{_esc(card.status, 100)}*"]))
    if card.text:
        head.append(_section(_esc(card.text, SECTION_MAX)))
    tail = _tail(card)
    chars = TEXT_BUDGET - text_length(head) - text_length(tail)
    blocks = MAX_BLOCKS - len(head) - len(tail)
    lines = [_esc(f"{s.icon} {s.name}  {s.detail}".rstrip(), STEP_LINE_MAX) for s in card.steps]
    need = sum(len(line) + 1 for line in lines)
    # Fields take what the steps leave, but at least half. A section of steps holds at least
    # SECTION_MAX - STEP_LINE_MAX chars, so this many blocks always suffice for the steps.
    field_chars = max(chars - need, chars // 2) if lines else chars
    step_blocks = min(need, chars) // (SECTION_MAX - STEP_LINE_MAX - 1) + 2 if lines else 0
    middle = _field_blocks(card.fields, field_chars, blocks - step_blocks)
    middle += _step_blocks(lines, chars - text_length(middle))
    return head + middle + tail


def _field_text(field: Field) -> str:
    value = _esc(field.value, FIELD_MAX - 8) or "—"
    if not field.label:
        return value
    return f"*{_esc(field.label, FIELD_MAX - len(value) - 3)}*\n{value}"


def _field_blocks(fields: tuple[Field, ...], chars: int, blocks: int) -> list[Block]:
    out: list[Block] = []
    used = 0
    for i, field in enumerate(fields):
        text = _field_text(field)
        joins = field.short and bool(out) and 0 < len(out[-1].get("fields", ())) < FIELDS_PER_SECTION
        note = more_line(len(fields) - i, "fields")
        reserve = (0, 0) if i == len(fields) - 1 else (len(note), 1)
        if used + len(text) + reserve[0] > chars or len(out) + (not joins) + reserve[1] > blocks:
            return [*out, _context([note])]
        if joins:
            out[-1]["fields"].append(_mrkdwn(text))
        else:
            out.append({"type": "section", "fields": [_mrkdwn(text)]} if field.short else _section(text))
        used += len(text)
    return out


def _step_blocks(lines: list[str], chars: int) -> list[Block]:
    kept, note = fit(lines, chars, "steps")
    sections: list[list[str]] = []
    for line in [*kept, *([note] if note else [])]:
        if sections and sum(len(x) + 1 for x in sections[-1]) + len(line) <= SECTION_MAX:
            sections[-1].append(line)
        else:
            sections.append([line])
    return [_section("\n".join(s)) for s in sections]


def _tail(card: Card) -> list[Block]:
    buttons = [_button(b) for b in card.buttons[:ACTIONS_MAX]]
    while text_length(buttons) > ACTIONS_TEXT_MAX:
        buttons.pop()
    left_out = len(card.buttons) - len(buttons)
    notes = [more_line(left_out, "buttons")] if left_out else []
    context, more = take(card.context, CONTEXT_ITEMS - len(notes), "notes")
    items = [_esc(c, CONTEXT_ITEM_MAX) for c in context] + ([more] if more else []) + notes
    tail = [_context(items)] if items else []
    return tail + ([{"type": "actions", "elements": buttons}] if buttons else [])


def _button(button: Button) -> Block:
    if len(button.action_id) > ID_MAX:
        raise ValueError(f"action_id longer than {ID_MAX} chars: {button.action_id[:40]}…")
    element: Block = {"type": "button", "text": _plain(button.label, BUTTON_MAX)}
    element["action_id"] = button.action_id
    if button.style != "default":
        element["style"] = button.style
    if button.confirm:
        element["confirm"] = _confirm(button.confirm, button.style)
    return element


def _confirm(confirm: Confirm, style: str) -> Block:
    dialog: Block = {
        "title": _plain(confirm.title, 100),
        "text": _plain(confirm.text, 300),
        "confirm": _plain(confirm.confirm, 30),
        "deny": _plain(confirm.deny, 30),
    }
    if style == "danger":
        dialog["style"] = "danger"
    return dialog


def render_text(card: Card) -> str:
    """The ``text`` fallback Slack requires next to blocks (notifications, screen readers, old clients)."""
    return _esc(card.plain_text(), FALLBACK_MAX)


def render_modal(form: Form) -> Block:
    """A Slack modal for a form: one input block per field, ``block_id`` the field's name, action "value"."""
    if len(form.state) > METADATA_MAX:
        raise ValueError(f"form state is {len(form.state)} chars; Slack keeps at most {METADATA_MAX}")
    if len(form.form_id) > ID_MAX:
        raise ValueError(f"form_id longer than {ID_MAX} chars")
    intro = [_section(_esc(form.intro, SECTION_MAX))] if form.intro else []
    blocks = intro + [_input(f) for f in form.fields]
    return {
        "type": "modal",
        "callback_id": form.form_id,
        "private_metadata": form.state,
        "title": _plain(form.title, VIEW_TEXT_MAX),
        "submit": _plain(form.submit, VIEW_TEXT_MAX),
        "close": _plain("Cancel", VIEW_TEXT_MAX),
        "blocks": blocks or [_section("Nothing to fill in.")],
    }


def _option(value: str, text: str | None = None) -> Block:
    if len(value) > OPTION_VALUE_MAX:
        raise ValueError(f"select option longer than {OPTION_VALUE_MAX} chars: {value[:40]}…")
    return {"text": _plain(text or value, OPTION_TEXT_MAX), "value": value}


def _input(field: FormField) -> Block:
    hint = field.help or ("A number." if field.kind == "number" else None)
    element: Block = {"type": "plain_text_input", "action_id": "value"}
    if field.kind in ("select", "boolean"):
        shown = field.options[:OPTIONS_MAX] if field.kind == "select" else ("true", "false")
        names = {"true": "Yes", "false": "No"} if field.kind == "boolean" else {}
        element = {"type": "static_select", "action_id": "value"}
        element["options"] = [_option(o, names.get(o)) for o in shown]
        initial = field.default if field.kind == "select" else None
        if field.kind == "boolean" and field.default is not None:
            initial = "true" if is_yes(field.default) else "false"
        if initial in shown:
            element["initial_option"] = _option(initial, names.get(initial))
        if len(field.options) > OPTIONS_MAX:
            hint = f"{hint or ''} (the first {OPTIONS_MAX} of {len(field.options)} options)".strip()
    elif field.default:
        element["initial_value"] = field.default
    if field.kind == "multiline":
        element["multiline"] = True
    block: Block = {"type": "input", "block_id": field.name, "label": _plain(field.label, LABEL_MAX)}
    block.update(element=element, optional=not field.required)
    if hint:
        block["hint"] = _plain(hint, LABEL_MAX)
    return block


def modal_errors(errors: dict[str, str]) -> dict[str, str]:
    """Field errors for ``ack(response_action="errors", errors=...)``: block_id (the field name) → message."""
    return {name: clip(message, LABEL_MAX) for name, message in errors.items()}
