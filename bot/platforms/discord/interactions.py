"""Discord interactions to the router and back: slash commands, autocomplete, clicks and modal submits.

Each interaction is parsed once into a ``handlers.types`` input, answered within Discord's 3 seconds, and
the router's reply rendered:

- Slow work is deferred first (an ephemeral "thinking" answer), and the reply follows as a followup.
- A modal can only be the first answer, never a followup. So ``/workflow run`` checks first, without
  any network call, whether required inputs are missing (the workflow file is cached); only then does it
  call the router before answering, and it defers anyway if the router takes over 2 s. A button may open
  a form too (Request changes), so a click is routed first in the same way. A form that still arrives
  after a defer is offered with a button that opens it.
- A Discord modal cannot show per-field errors, nor be answered with another modal. An invalid
  submission gets an ephemeral message listing the errors, with a button that reopens the form
  prefilled with what was typed.
- Card buttons whose card asks for a confirmation (Discord buttons have no confirm dialog) get an
  ephemeral question first; its confirm button acts, and the question turns into the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.errors import log_unexpected
from bot.platforms.discord.commands import Identities, place
from bot.platforms.discord.messages import DiscordMessages
from bot.platforms.discord.views import (
    CUSTOM_ID_MAX,
    UNKNOWN_BUTTON,
    FormMemory,
    UiButton,
    buttons,
    card_message,
    form_modal,
    modal_id,
    modal_values,
    split_modal_id,
)
from bot.storage.cards import cards_by_key
from cards.limits import clip
from cards.model import Card, Confirm, Form, parse_action_id
from engine.inputs import InputError, parse_pairs, resolve_inputs
from handlers.run_form import missing_only
from handlers.types import Autocomplete, Click, Command, FieldErrors, Reply, Say, ShowForm, Submission

if TYPE_CHECKING:
    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
CARD_KEYS = {"conv": "conversation"}  # button kind -> its card's key prefix, where they differ
FORM_BUDGET = 2.0  # seconds the router may take before a form-bound answer is deferred (deadline: 3 s)
EXPIRED = "This form has expired (forms are kept for 15 minutes). Run the command again to get a new one."


class Interactions:
    """The adapter's inbound half; the bot's commands and buttons call these methods."""

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.router = ctx.router
        self.identities = Identities(ctx.settings.admins)
        self.forms = FormMemory()
        self.confirms: dict[str, Confirm] = {}  # from cards answered ephemerally (they have no stored row)
        self.messages = DiscordMessages(ctx, self.identities)

    async def message(self, client: discord.Client, message: discord.Message) -> None:
        """A MESSAGE_CREATE; a failure is logged (nobody waits for an answer to a message)."""
        try:
            await self.messages.on_message(client, message)
        except Exception:
            log.exception("Discord message %s failed", message.id)

    async def guarded(self, interaction: discord.Interaction, work: Awaitable[None]) -> None:
        """Run ``work``; anything unexpected is logged under a ref that the user is shown."""
        try:
            await work
        except Exception:
            found = log_unexpected(log, "Discord interaction %s failed", interaction.id)
            text = found.message
            try:
                if interaction.response.is_done():
                    await interaction.followup.send(text, ephemeral=True)
                else:
                    await interaction.response.send_message(text, ephemeral=True)
            except discord.HTTPException:
                log.warning("could not tell the user about ref %s (the interaction has expired)", found.ref)

    async def run(self, interaction: discord.Interaction, name: str, inputs: str) -> None:
        """``/workflow run``: a modal when inputs are missing, else defer and start the run."""
        text = " ".join(part for part in ("run", shlex.quote(name), inputs.strip()) if part)
        if not self._wants_form(name, inputs):
            await self.command(interaction, text)
            return
        cmd = Command(await self.identities.of(interaction), place(interaction), "workflow", text)
        await self._routed_first(interaction, self.router.command(cmd))

    async def _routed_first(self, interaction: discord.Interaction, reply: Awaitable[Reply]) -> None:
        """Answer with the router's reply when it is quick (a modal must be the first answer), else defer."""
        task = asyncio.ensure_future(reply)
        done, _ = await asyncio.wait({task}, timeout=FORM_BUDGET)
        if not done:
            await interaction.response.defer(ephemeral=True, thinking=True)
        await self.answer(interaction, await task)

    async def command(
        self, interaction: discord.Interaction, words: list[str | None] | str, name: str = "workflow"
    ) -> None:
        """Any other (sub)command: defer, route, follow up."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = words if isinstance(words, str) else " ".join(shlex.quote(w) for w in words if w)
        cmd = Command(await self.identities.of(interaction), place(interaction), name, text)
        await self.answer(interaction, await self.router.command(cmd))

    async def complete(
        self, interaction: discord.Interaction, option: str, partial: str
    ) -> list[app_commands.Choice[str]]:
        """Autocomplete (no defer exists for it: the router answers from cached workflow files)."""
        ac = Autocomplete(
            await self.identities.of(interaction), place(interaction), "workflow", option, partial
        )
        names = await self.router.autocomplete(ac)
        return [app_commands.Choice(name=clip(n, 100), value=n[:100]) for n in names[:25]]

    def _wants_form(self, name: str, inputs: str) -> bool:
        try:
            loaded = self.router.services.workflow(name)
            resolve_inputs(loaded.spec, parse_pairs(shlex.split(inputs)))
        except InputError as exc:
            return missing_only(exc)
        except Exception:
            return False  # an unknown workflow, bad quoting: the router explains, after a defer
        return False

    async def click(self, interaction: discord.Interaction, action_id: str) -> None:
        """A card button: ask first if its card wants a confirmation, else act and answer (or open a form)."""
        confirm = await self._confirm(action_id, interaction.user.id)
        yes = f"sb-ui:yes:{action_id}"
        if confirm is not None and len(yes) <= CUSTOM_ID_MAX:
            view = buttons(
                UiButton(yes, confirm.confirm, discord.ButtonStyle.danger),
                UiButton("sb-ui:no:-", confirm.deny),
            )
            await interaction.response.send_message(
                f"**{confirm.title}**\n{confirm.text}", view=view, ephemeral=True
            )
            return
        message = f"{interaction.channel_id}:{interaction.message.id}" if interaction.message else None
        click = Click(await self.identities.of(interaction), place(interaction), action_id, message)
        await self._routed_first(interaction, self.router.click(click))

    async def ui(self, interaction: discord.Interaction, action: str, arg: str) -> None:
        """The adapter's own buttons: confirm (``yes``), keep (``no``), open a kept form (``form``)."""
        if action == "yes":
            await interaction.response.defer()  # the question is edited into the outcome below
            click = Click(await self.identities.of(interaction), place(interaction), arg)
            await self.answer(interaction, await self.router.click(click), edit=True)
        elif action == "no":
            await interaction.response.edit_message(content="Nothing was done.", embeds=[], view=None)
        elif action == "form":
            form = self.forms.get(arg)
            if form is None:
                await interaction.response.send_message(EXPIRED, ephemeral=True)
            else:
                await self._open(interaction, form)
        else:
            await interaction.response.send_message(UNKNOWN_BUTTON, ephemeral=True)

    async def _confirm(self, action_id: str, user_id: int) -> Confirm | None:
        # The card as stored now (key "{kind}:{target}", as bot.runtime.status_cards writes it) says
        # whether the button still exists and what to ask; a card that no longer has it lets the router
        # explain it is stale.
        # An approval sent by DM (notify: dm) has no channel card, only one per approver,
        # "approval:<id>:dm:<user id>": the clicker's own.
        parsed = parse_action_id(action_id)
        if parsed is None:
            return None
        key = f"{CARD_KEYS.get(parsed[0], parsed[0])}:{parsed[1]}"
        keys = [key, f"{key}:dm:{user_id}"]
        rows = await cards_by_key(self.ctx.engine, keys)
        stored = rows.get(key) or rows.get(keys[1])
        if stored is None:
            return self.confirms.get(action_id)
        card = Card.from_dict(stored)
        return next((b.confirm for b in card.buttons if b.action_id == action_id), None)

    async def submit(self, interaction: discord.Interaction) -> None:
        """A modal submission (routed here from ``on_interaction``, so it works across restarts)."""
        data: Any = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        await interaction.response.defer(ephemeral=True, thinking=True)
        form_id, state = split_modal_id(custom_id)
        values = modal_values(list(data.get("components", [])))
        sub = Submission(await self.identities.of(interaction), place(interaction), form_id, values, state)
        reply = await self.router.submit(sub)
        form = self.forms.get(f"open:{interaction.user.id}:{custom_id}")
        if isinstance(reply, FieldErrors) and form is not None:
            await self._field_errors(interaction, reply, form, values)
        else:
            await self.answer(interaction, reply)

    async def _field_errors(
        self, interaction: discord.Interaction, reply: FieldErrors, form: Form, values: dict[str, str]
    ) -> None:
        fields = tuple(replace(f, default=values.get(f.name, f.default)) for f in form.fields)
        token = self.forms.keep(replace(form, fields=fields, errors=dict(reply.errors)))
        fix = UiButton(f"sb-ui:form:{token}", "Fix and resubmit", discord.ButtonStyle.primary)
        await interaction.followup.send(_errors_text(reply, form), view=buttons(fix), ephemeral=True)

    async def _open(self, interaction: discord.Interaction, form: Form) -> None:
        try:
            modal = form_modal(form)
        except ValueError as exc:  # more than five required fields: a modal cannot ask for them all
            await self.answer(interaction, Say(f"{exc}. Give the inputs in the command instead."))
            return
        self.forms.keep(form, f"open:{interaction.user.id}:{modal_id(form)}")
        await interaction.response.send_modal(modal)

    async def answer(self, interaction: discord.Interaction, reply: Reply, edit: bool = False) -> None:
        """Render the router's reply as the first answer, a followup, or an edit of the answer."""
        view: discord.ui.View | None = None
        if isinstance(reply, ShowForm):
            if not interaction.response.is_done():
                await self._open(interaction, reply.form)
                return
            token = self.forms.keep(reply.form)  # deferred already: a button opens the modal
            view = buttons(UiButton(f"sb-ui:form:{token}", "Open the form", discord.ButtonStyle.primary))
            reply = Say(f"{reply.form.title} needs a few details.")
        if isinstance(reply, FieldErrors):
            reply = Say(_errors_text(reply, None))
        say = reply if isinstance(reply, Say) else Say("Done.")
        self._remember(say.card)
        parts = card_message(say.text if say.card else say.plain_text() or "Done.", say.card)
        parts["view"] = view or parts["view"]
        if edit:
            await interaction.edit_original_response(**parts)
            return
        present = {k: v for k, v in parts.items() if v is not None}
        if not interaction.response.is_done():
            await interaction.response.send_message(**present, ephemeral=say.ephemeral)
        elif say.ephemeral:
            await interaction.followup.send(**present, ephemeral=True)
        else:  # the deferred placeholder is ephemeral; a public answer is a message of its own
            await interaction.edit_original_response(content="Posted in the channel.")
            await interaction.followup.send(**present)

    def _remember(self, card: Card | None) -> None:
        for button in card.buttons if card else ():
            if button.confirm is not None:
                self.confirms[button.action_id] = button.confirm
        while len(self.confirms) > 1_000:
            self.confirms.pop(next(iter(self.confirms)))


def _errors_text(reply: FieldErrors, form: Form | None) -> str:
    labels = {f.name: f.label for f in form.fields} if form else {}
    lines = [f"• **{labels.get(name, name)}**: {why}" for name, why in reply.errors.items()]
    again = "" if form else "\nRun the command again to get the form."
    return "Nothing was started. Please fix:\n" + "\n".join(lines) + again
