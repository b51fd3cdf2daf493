"""The local console as a chat platform: Switchboard is both the bot and the chat server.

Outbound, the outbox's cards and thread replies become rows of ``console_messages`` pushed to every open
page. Inbound, the page's requests (``bot.platforms.console.web``) arrive here already parsed: each is
turned into
a ``handlers.types`` input acting as the console user picked in the page, sent through the ``Router``,
and its reply stored (ephemeral ones for that user only) or returned (forms, field errors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bot.conversations.outbound import agent_entries
from bot.delivery.contract import UNLIMITED, DeliveryError, Sent
from bot.errors import BadInput, NotFound, NotPermitted
from bot.identity import Identity, Place
from bot.platforms.console.feed import BOT, Hub, form_json, message_json
from bot.platforms.console.visibility import (
    channels_for,
    dm_owner,
    may_see,
    may_see_channel,
    reader,
)
from bot.storage.console import ConsoleStore, Message
from bot.web_auth.auth import WebAuth
from bot.web_auth.people import console_user
from cards.model import Card, Form
from handlers.types import Click, Command, FieldErrors, Reply, ShowForm, Submission

if TYPE_CHECKING:
    from aiohttp import web

    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
MAX_TEXT = 4000
# Called with every plain (non-slash) message; bot.platforms.console.support routes them to conversations.
MessageListener = Callable[[Identity, Place, Message], Awaitable[None]]


class ConsoleAdapter:
    """``bot.delivery.contract.Platform`` for the built-in web console (no tokens, nothing to set up)."""

    platform = "console"
    posting = editing = UNLIMITED  # a local table: no rate limit to respect
    live_every = 0.25  # an answer being written is redrawn this often (bot.delivery.live)

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ConsoleStore(ctx.engine, ctx.router.services.runtime.store.journal)
        self.hub = Hub(lambda who, msg: may_see(self.settings, who, msg), ctx.clock)
        self.auth = WebAuth(ctx.settings, ctx.engine, ctx.clock, ctx.directories)
        self.auth.on_sign_out.append(lambda session: self.hub.end_session(session.csrf))
        self.listeners: list[MessageListener] = []
        from bot.platforms.console.support import ConversationListener  # it imports this module

        self.listeners.append(ConversationListener(ctx))
        self._tasks: set[asyncio.Task[None]] = set()

    # -- who and where -------------------------------------------------------------------------------

    def identity(self, name: str) -> Identity:
        """The console user ``name`` with the groups configured for them; admin per settings.admins."""
        return console_user(self.settings, name)

    def channel(self, name: str) -> str:
        """A configured channel's name (a leading # is fine), a user's DM (``@alice``), or a clear error."""
        if name.strip().startswith("@"):
            user = name.strip()[1:]
            # A console user's DM, or the DM of someone signed in through a provider (``@slack:U0123``).
            if user not in self.settings.console_users and ":" not in user:
                users = ", ".join(f"@{u}" for u in self.settings.console_users) or "none"
                raise NotFound(f"Unknown direct message '@{user}'. Users: {users}.")
            return f"@{user}"
        bare = name.strip().lstrip("#")
        if bare not in self.settings.console_channels:
            known = ", ".join(f"#{c}" for c in self.settings.console_channels)
            raise NotFound(
                f"Unknown channel '#{bare}'. Channels: {known} (configure SWITCHBOARD_CONSOLE_CHANNELS)."
            )
        return bare

    async def place(self, who: Identity, channel: str, thread: int | None = None) -> Place:
        """Where a request acts: a channel, or a thread (its parent must be a message of that channel)."""
        name = self.channel(channel)
        if dm_owner(name) not in (None, reader(who)):
            raise NotFound(f"There is no channel {name} for {who.name}; their own is @{reader(who)}.")
        if not may_see_channel(self.settings, who, name):
            raise NotPermitted(f"Only agents see #{name}. Agents: {', '.join(agent_entries(self.settings))}.")
        if thread is not None:
            parent = await self.message(who, name, thread)
            thread = parent.thread_id or parent.id  # a reply's thread is its parent's
        return Place("console", name, str(thread) if thread is not None else None, _label(name))

    async def message(self, who: Identity, channel: str, message_id: int) -> Message:
        """A message ``who`` can see in ``channel``."""
        msg = await self.store.get(message_id)
        if msg is None or msg.channel != channel or not may_see(self.settings, who, msg):
            raise NotFound(f"There is no message {message_id} in {_label(channel)}.")
        return msg

    async def visible(self, who: Identity) -> list[Message]:
        """The newest messages ``who`` may see in their channels and their DM (no ephemeral replies)."""
        return await self.store.visible(reader(who), [*channels_for(self.settings, who), f"@{reader(who)}"])

    # -- inbound: what a person does in the page -----------------------------------------------------

    async def command(self, who: Identity, where: Place, text: str) -> dict[str, Any]:
        """A slash command, as Slack splits it: ``/workflow run x`` is command "workflow", text "run x"."""
        name, _, rest = _text(text)[1:].partition(" ")
        if not name:
            raise BadInput("Type a command after the slash, e.g. /workflow help")
        reply = await self.ctx.router.command(Command(who, where, name.lower(), rest.strip()))
        return await self.answer(reply, who, where)

    async def say(self, who: Identity, where: Place, text: str) -> dict[str, Any]:
        """A plain message: shown to everyone who can see its channel, then handed to the listeners."""
        msg = await self._add(where, who.name, _text(text))
        for listener in self.listeners:
            task = asyncio.create_task(self._listen(listener, who, where, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return {"kind": "message", "message": message_json(msg)}

    async def click(self, who: Identity, channel: str, message_id: int, action_id: str) -> dict[str, Any]:
        """A button on a message; any reply goes where the message is (its thread, if it is in one)."""
        where = await self.place(who, channel)
        msg = await self.message(who, where.channel, message_id)
        where = await self.place(who, where.channel, msg.thread_id)
        reply = await self.ctx.router.click(Click(who, where, action_id, message=str(msg.id)))
        return await self.answer(reply, who, where)

    async def submit(
        self, who: Identity, where: Place, form_id: str, state: str, values: dict[str, str], form: Form | None
    ) -> dict[str, Any]:
        """A filled-in dialog; field errors send the form back, redrawn with the values and messages."""
        reply = await self.ctx.router.submit(Submission(who, where, form_id, values, state))
        if isinstance(reply, FieldErrors) and form is not None:
            fields = tuple(replace(f, default=values.get(f.name, f.default)) for f in form.fields)
            redrawn = replace(form, fields=fields, errors=reply.errors)
            return {"kind": "errors", "errors": reply.errors, "form": form_json(redrawn)}
        return await self.answer(reply, who, where)

    async def answer(self, reply: Reply, who: Identity, where: Place) -> dict[str, Any]:
        """Show a router reply: a form to open, field errors, or a message (ephemeral: for ``who`` only)."""
        if reply is None:
            return {"kind": "none"}
        if isinstance(reply, ShowForm):
            return {"kind": "form", "form": form_json(reply.form)}
        if isinstance(reply, FieldErrors):
            return {"kind": "errors", "errors": reply.errors}
        visible_to = reader(who) if reply.ephemeral else None
        msg = await self._add(where, BOT, reply.plain_text(), card=reply.card, visible_to=visible_to)
        return {"kind": "say", "message": message_json(msg)}

    # -- outbound: the outbox's ChatAdapter calls ----------------------------------------------------

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        name = self._deliverable(channel)
        try:
            msg = await self._add(Place("console", name), BOT, card.plain_text(), card=card, key=key)
        except sa.exc.IntegrityError:
            # Posted before, by a send whose outcome was lost: the key is unique, so show it once.
            found = await self.find(name, key)
            if found is None:
                raise
            return found
        return Sent(str(msg.id))

    async def update(self, sent: Sent, card: Card) -> None:
        msg = await self.store.edit(_id(sent.ref), card, self.ctx.clock())
        if msg is None:
            raise DeliveryError(f"console message {sent.ref} no longer exists", permanent=True)
        await self.hub.publish(msg, "update")

    async def thread(self, parent: Sent) -> str:
        return parent.ref  # a console thread is named by its parent message

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        parent = await self.store.get(_id(thread))
        if parent is None:
            raise DeliveryError(f"console message {thread} no longer exists", permanent=True)
        where = Place("console", parent.channel, str(parent.id))
        try:
            msg = await self._add(where, BOT, card.plain_text(), card=card, key=key)
        except sa.exc.IntegrityError:
            found = await self.find(parent.channel, key)  # sent before by a send whose outcome was lost
            if found is None:
                raise
            return found
        return Sent(str(msg.id))

    async def find(self, channel: str, key: str) -> Sent | None:
        msg = await self.store.by_key(channel.lstrip("#"), key)
        return Sent(str(msg.id)) if msg is not None else None

    # -- lifecycle -----------------------------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        from bot.platforms.console.web import ConsoleRoutes  # it imports this module

        self.auth.attach(app)
        ConsoleRoutes(self).attach(app)

    async def start(self) -> None:
        """Nothing to connect (the routes are served by the shared web server); the session key is
        read, or made and stored on the first start."""
        await self.auth.signer()
        if self.auth.mode == "dev":
            log.info("console sign-in: dev mode (a user picker, on loopback only)")
        else:
            log.info("console sign-in: OpenID Connect at %s", self.settings.oidc_issuer)
            if not (self.settings.public_url or "").startswith("https://"):
                log.warning(
                    "console sign-in: SWITCHBOARD_PUBLIC_URL is not https, so session cookies are not marked "
                    "Secure; serve the console through TLS and set it (README, Security)"
                )

    async def stop(self) -> None:
        await self.hub.close_all()
        for task in list(self._tasks):
            task.cancel()

    def describe(self) -> str:
        return f"Console: {self.ctx.url}"

    # -- helpers -------------------------------------------------------------------------------------

    async def _add(
        self,
        where: Place,
        author: str,
        text: str,
        card: Card | None = None,
        visible_to: str | None = None,
        key: str | None = None,
    ) -> Message:
        thread_id = int(where.thread) if where.thread else None
        visible_to = visible_to or dm_owner(where.channel)  # a DM, the bot's posts too, is its user's only
        msg = await self.store.add(
            where.channel, author, text, self.ctx.clock(), card, thread_id, visible_to, key
        )
        await self.hub.publish(msg)
        return msg

    def _deliverable(self, channel: str) -> str:
        try:
            return self.channel(channel)
        except NotFound as exc:
            hint = (
                f"add {channel.lstrip('@')} to SWITCHBOARD_CONSOLE_USERS"
                if channel.startswith("@")
                else f"add {channel.lstrip('#')} to SWITCHBOARD_CONSOLE_CHANNELS"
            )
            raise DeliveryError(str(exc), permanent=True, hint=hint) from None

    async def _listen(self, listener: MessageListener, who: Identity, where: Place, msg: Message) -> None:
        try:
            await listener(who, where, msg)
        except Exception:
            log.exception("console: a message listener failed on message %s", msg.id)


def _label(channel: str) -> str:
    return channel if dm_owner(channel) else f"#{channel}"


def _text(text: str) -> str:
    text = text.strip()
    if not text:
        raise BadInput("The message is empty.")
    if len(text) > MAX_TEXT:
        raise BadInput(f"The message is too long ({len(text)} characters; at most {MAX_TEXT}).")
    return text


def _id(ref: str) -> int:
    try:
        return int(ref)
    except ValueError:
        raise DeliveryError(f"'{ref}' is not a console message id", permanent=True) from None
