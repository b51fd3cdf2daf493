"""discord.py UI for cards and forms: buttons that survive restarts, card messages, and modals.

State lives in ``custom_id``s (and the database), never in a view object, so a click on a message sent
before a restart works: ``CardButton`` matches every card button (``sb:{kind}:{target}:{choice}``) and
``UiButton`` the adapter's own buttons (``sb-ui:{action}:{arg}``: confirm, keep, open a form). Both are
registered with ``add_dynamic_items`` in the bot's ``setup_hook`` and hand the click to the bot's
``switchboard`` handler.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from re import Match
from typing import Any, Protocol

import discord

from cards.discord import render_message, render_modal
from cards.limits import clip
from cards.model import Card, Form

UNKNOWN_BUTTON = "Switchboard does not know this button."
CARD_TEMPLATE = r"sb:(?P<kind>[a-z]+):(?P<target>[^:]+):(?P<choice>[a-z_]+)"
UI_TEMPLATE = r"sb-ui:(?P<action>[a-z]+):(?P<arg>.+)"
CUSTOM_ID_MAX = 100
CONTENT_MAX = 2_000
INPUT_LABEL_MAX = 45
FORM_TTL = 15 * 60.0  # an interaction token lives 15 minutes; a kept form is useless after that


class Handler(Protocol):
    """What the buttons call: the adapter's interaction handling (``bot.platforms.discord.commands``)."""

    async def click(self, interaction: discord.Interaction, action_id: str) -> None: ...

    async def ui(self, interaction: discord.Interaction, action: str, arg: str) -> None: ...


def _handler(interaction: discord.Interaction) -> Handler | None:
    return getattr(interaction.client, "switchboard", None)


class CardButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CARD_TEMPLATE):
    """A card's button; its ``custom_id`` is the card's action id, which the router resolves."""

    def __init__(
        self,
        action_id: str,
        label: str = "…",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=action_id), row=row)
        self.action_id = action_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> CardButton:
        return cls(match.group(0))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.click(interaction, self.action_id)


class UiButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=UI_TEMPLATE):
    """One of the adapter's own buttons: ``yes`` confirms an action, ``no`` keeps, ``form`` opens a form."""

    def __init__(
        self, custom_id: str, label: str, style: discord.ButtonStyle = discord.ButtonStyle.secondary
    ) -> None:
        super().__init__(discord.ui.Button(label=clip(label, 80) or "…", style=style, custom_id=custom_id))
        match = self.template.fullmatch(custom_id)
        self.action, self.arg = (match.group("action"), match.group("arg")) if match else ("", "")

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> UiButton:
        return cls(match.group(0), "…")

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.ui(interaction, self.action, self.arg)


def buttons(*items: discord.ui.Item[Any]) -> discord.ui.View:
    """A view of dynamic items only: discord.py keeps no per-message state for it."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def card_message(text: str | None, card: Card | None) -> dict[str, Any]:
    """Keyword arguments for ``send``/``edit``: the text, the card's embeds and its buttons (or none)."""
    empty: dict[str, Any] = {"content": "", "embeds": [], "components": []}
    rendered = render_message(card) if card is not None else empty
    items: list[discord.ui.Item[Any]] = []
    for index, row in enumerate(rendered["components"]):
        for spec in row["components"]:
            style = discord.ButtonStyle(spec.get("style", 2))
            items.append(CardButton(spec["custom_id"], spec.get("label", "…"), style, row=index))
    return {
        "content": clip(text or rendered["content"] or "", CONTENT_MAX) or None,
        "embeds": [discord.Embed.from_dict(e) for e in rendered["embeds"]],
        "view": buttons(*items) if items else None,
    }


class FormModal(discord.ui.Modal):
    """A form as a modal. Its submission is handled by the adapter's ``on_interaction`` listener instead of
    ``on_submit``, because discord.py keeps modals in memory by ``custom_id`` only: a modal opened before a
    restart, or the same form opened by two people, would otherwise lose submissions."""

    async def on_submit(self, interaction: discord.Interaction) -> None:
        return None


def modal_id(form: Form) -> str:
    """The modal's ``custom_id``: the form id, plus its state when both fit in 100 characters."""
    if form.state and len(form.form_id) + 1 + len(form.state) <= CUSTOM_ID_MAX:
        return f"{form.form_id}|{form.state}"
    return form.form_id


def split_modal_id(custom_id: str) -> tuple[str, str]:
    """``(form_id, state)`` from a modal's ``custom_id``."""
    form_id, _, state = custom_id.partition("|")
    return form_id, state


def form_modal(form: Form) -> FormModal:
    """A modal of at most five text inputs; fields with an error are marked ⚠ in their label."""
    payload = render_modal(form)  # fields beyond five (optional ones) keep their defaults when left out
    modal = FormModal(title=payload["title"], custom_id=modal_id(form), timeout=FORM_TTL)
    for row in payload["components"]:
        spec = row["components"][0]
        label = spec["label"]
        if spec["custom_id"] in form.errors:
            label = clip(f"⚠ {label}", INPUT_LABEL_MAX)
        modal.add_item(
            discord.ui.TextInput(
                label=label,
                custom_id=spec["custom_id"],
                style=discord.TextStyle.paragraph if spec["style"] == 2 else discord.TextStyle.short,
                required=spec["required"],
                default=spec.get("value"),
                placeholder=spec.get("placeholder"),
                max_length=4_000,
            )
        )
    return modal


def modal_values(components: list[dict[str, Any]]) -> dict[str, str]:
    """The submitted texts by field name, from action rows (type 1) or labels (type 18)."""
    values: dict[str, str] = {}
    for component in components:
        if component.get("type") == 1:
            values.update(modal_values(component.get("components", [])))
        elif component.get("type") == 18 and component.get("component"):
            values.update(modal_values([component["component"]]))
        elif component.get("custom_id") and "value" in component:
            values[str(component["custom_id"])] = str(component["value"] or "")
    return values


@dataclass
class FormMemory:
    """Forms this process opened or may reopen, kept for the 15 minutes an interaction lives.

    A Discord modal cannot show per-field errors nor be answered with another modal, so an invalid
    submission gets a message listing the errors with a button that reopens the form prefilled; that
    button names a form kept here. After a restart the button explains that the form has expired.
    """

    limit: int = 500
    _forms: OrderedDict[str, tuple[float, Form]] = field(default_factory=OrderedDict)

    def keep(self, form: Form, key: str | None = None) -> str:
        """Remember ``form`` under ``key`` (a new token when None) and return the key."""
        key = key or secrets.token_urlsafe(9)
        self._forms[key] = (time.monotonic(), form)
        self._forms.move_to_end(key)
        while len(self._forms) > self.limit:
            self._forms.popitem(last=False)
        return key

    def get(self, key: str) -> Form | None:
        """The form kept under ``key``, unless it has expired."""
        kept = self._forms.get(key)
        if kept is None or kept[0] < time.monotonic() - FORM_TTL:
            return None
        return kept[1]
