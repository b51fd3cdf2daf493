"""Slack listeners: parse a payload once into a ``handlers.types`` input, ack, call the Router, reply.

Commands and clicks ack before any work: with ``process_before_response=False`` the HTTP 200 leaves at
``ack()`` and the listener carries on as a task. A modal submit is the one exception: field errors can
only travel on its ack, so the Router runs first, within ``SUBMIT_BUDGET`` of Slack's 3 s.
Bolt hands listeners their arguments by parameter name, so ``ack`` and ``body`` are spelt as Bolt wants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.identity import Place
from bot.platforms.slack.errors import hint_for, slack_error
from bot.platforms.slack.identity import SlackDirectory
from bot.platforms.slack.messages import SlackMessages
from cards.model import Form
from cards.slack import MAX_BLOCKS, escape, modal_errors, render_blocks, render_modal
from handlers.types import Click, Command, FieldErrors, Reply, Say, ShowForm, Submission

if TYPE_CHECKING:
    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
COMMAND = "/workflow"
COMMANDS = (COMMAND, "/approvals", "/human", "/agent", "/queue", "/conversation", "/runners")
SUBMIT_BUDGET = 2.5  # seconds a modal submit may take before it is acked without field errors
# Where chat.postEphemeral cannot reach (the bot is not in the channel, or it is a DM with someone
# else), a command's response_url still can: it works in any conversation for 30 minutes.
UNREACHABLE = {"channel_not_found", "not_in_channel", "is_archived", "user_not_in_channel"}


async def ack_commands_now(
    req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
) -> BoltResponse | None:
    """Our slash commands' 200 is decided before their listener runs: an empty ack (``on_command``).

    Bolt starts the listener as a task and then looks at the ack every 10 ms until there is one, so
    each command's answer waited at least one of those sleeps after the listener had acked. Acked
    here, after the signature and replay checks (global middleware runs in order), Bolt finds the
    ack at its first look; ``on_command`` acks again, as it must in Socket Mode too, which changes
    nothing. Buttons, modals and events keep their own acks.
    """
    if req.body.get("command") in COMMANDS:
        await req.context.ack()
    return await next()


@dataclass(frozen=True)
class ReplyTo:
    """Where a reply goes: the channel, the person, and the short-lived handles Slack gave us."""

    channel: str
    user: str
    trigger_id: str | None = None
    response_url: str | None = None
    channel_name: str | None = None


class SlackListeners:
    """The Bolt listeners for the commands, ``sb:`` buttons, ``sb:form:`` modals and messages."""

    def __init__(
        self,
        ctx: PlatformContext,
        client: AsyncWebClient,
        directory: SlackDirectory,
        session: aiohttp.ClientSession,
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.directory = directory
        self.session = session
        self.messages = SlackMessages(ctx, client, directory)

    def register(self, bolt: AsyncApp) -> None:
        """Add every listener to the Bolt app."""
        for command in COMMANDS:
            bolt.command(command)(self.on_command)
        bolt.action(re.compile(r"^sb:"))(self.on_action)
        bolt.view_submission(re.compile(r"^sb:form:"))(self.on_submission)
        bolt.event("app_mention")(self.messages.on_event)
        bolt.event("message")(self.messages.on_event)
        # Last: any other event type the app is subscribed to gets its 200 (a 404 would count as a failed
        # delivery, which Slack retries and, repeated, turns the subscription off).
        bolt.event(re.compile(r".*"))(self.on_unhandled)

    async def on_unhandled(self, body: dict[str, Any]) -> None:
        log.debug("Slack: ignored a %r event (no listener for it)", (body.get("event") or {}).get("type"))

    async def on_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()  # the 200 leaves now; the reply follows as its own message
        to = ReplyTo(
            body["channel_id"],
            body["user_id"],
            body.get("trigger_id"),
            body.get("response_url"),
            body.get("channel_name"),
        )
        who = await self.directory.identity(
            body.get("team_id", ""), body["user_id"], body.get("user_name", "")
        )
        where = Place("slack", to.channel, channel_name=to.channel_name)
        cmd = Command(who, where, str(body.get("command", COMMAND)).lstrip("/"), body.get("text", ""))
        await self.answer(await self.ctx.router.command(cmd), to)

    async def on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user, container = body["user"], body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
        message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
        team = user.get("team_id") or (body.get("team") or {}).get("id", "")
        who = await self.directory.identity(team, user["id"], user.get("username", ""))
        name = (body.get("channel") or {}).get("name")
        where = Place("slack", channel, channel_name=name)
        ref = f"{channel}:{message_ts}" if message_ts else None
        reply = await self.ctx.router.click(Click(who, where, body["actions"][0]["action_id"], ref))
        await self.answer(
            reply, ReplyTo(channel, user["id"], body.get("trigger_id"), body.get("response_url"))
        )

    async def on_submission(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        view, user = body["view"], body["user"]
        meta = _metadata(view.get("private_metadata", ""))
        to = ReplyTo(meta.get("channel", ""), user["id"], channel_name=meta.get("channel_name"))
        work = asyncio.ensure_future(self._submit(body, view, to, meta))
        done, _ = await asyncio.wait({work}, timeout=SUBMIT_BUDGET)
        if not done:  # close the modal in time; the outcome follows as an ephemeral message
            await ack()
            await self.answer(await work, to)
            return
        reply = work.result()
        if isinstance(reply, FieldErrors):
            await ack(response_action="errors", errors=_block_errors(view, reply.errors))
        elif isinstance(reply, ShowForm):
            await ack(response_action="update", view=self.modal(reply.form, to))
        else:
            await ack()
            await self.answer(reply, to)

    async def _submit(
        self, body: dict[str, Any], view: dict[str, Any], to: ReplyTo, meta: dict[str, Any]
    ) -> Reply:
        team = body["user"].get("team_id") or (body.get("team") or {}).get("id", "")
        who = await self.directory.identity(team, to.user, body["user"].get("username", ""))
        where = Place("slack", to.channel, channel_name=to.channel_name)
        values = _values(view)
        sub = Submission(who, where, view["callback_id"], values, str(meta.get("state", "")))
        return await self.ctx.router.submit(sub)

    # Replies.

    async def answer(self, reply: Reply, to: ReplyTo) -> None:
        """Render a Router reply: a modal, an ephemeral message, or a message in the channel."""
        if reply is None:
            return
        if isinstance(reply, ShowForm):
            await self.open_form(reply.form, to)
            return
        if isinstance(reply, FieldErrors):
            reply = Say("\n".join(f"{name}: {why}" for name, why in reply.errors.items()))
        message = _message(reply)
        if not to.channel:
            # Nowhere to reply in (a modal submitted without its metadata, say): the app's DM with the
            # person reaches them instead; Slack opens it for a user id.
            to = ReplyTo(to.user, to.user, to.trigger_id, to.response_url, to.channel_name)
            reply = dataclasses.replace(reply, ephemeral=False)
        try:
            if reply.ephemeral:
                await self._ephemeral(to, message)
            else:
                await self.client.chat_postMessage(channel=to.channel, **message)
        except SlackApiError as exc:
            log.warning("Slack: replying in %s failed: %s; %s", to.channel, slack_error(exc), hint_for(exc))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("Slack: replying in %s failed: could not reach Slack (%r)", to.channel, exc)

    async def _ephemeral(self, to: ReplyTo, message: dict[str, Any]) -> None:
        try:
            await self.client.chat_postEphemeral(channel=to.channel, user=to.user, **message)
        except SlackApiError as exc:
            if slack_error(exc) not in UNREACHABLE or not to.response_url:
                raise
            hook = AsyncWebhookClient(to.response_url, session=self.session)
            await hook.send(response_type="ephemeral", **message)

    async def open_form(self, form: Form, to: ReplyTo) -> None:
        """``views.open`` at once: the trigger_id dies about 3 s after the command or click."""
        try:
            await self.client.views_open(trigger_id=to.trigger_id or "", view=self.modal(form, to))
        except SlackApiError as exc:
            log.warning("Slack: views.open failed: %s; %s", slack_error(exc), hint_for(exc))
            await self.answer(Say(f"The form did not open ({slack_error(exc)}); run the command again."), to)

    def modal(self, form: Form, to: ReplyTo) -> dict[str, Any]:
        """The modal for a form; ``private_metadata`` carries the form's state and the channel."""
        view = render_modal(form)
        view["private_metadata"] = json.dumps(
            {"state": form.state, "channel": to.channel, "channel_name": to.channel_name}
        )
        return view


def _message(say: Say) -> dict[str, Any]:
    if say.card is None:
        return {"text": escape(say.plain_text())}
    blocks = render_blocks(say.card)
    if say.text and len(blocks) < MAX_BLOCKS:
        blocks.insert(0, {"type": "section", "text": {"type": "mrkdwn", "text": escape(say.text)}})
    return {"text": escape(say.plain_text()), "blocks": blocks}


def _metadata(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _values(view: dict[str, Any]) -> dict[str, str]:
    """Submitted values by field (block_id): a text input's ``value``, a select's chosen option."""
    values: dict[str, str] = {}
    for block_id, elements in ((view.get("state") or {}).get("values") or {}).items():
        element: dict[str, Any] = elements.get("value") or next(iter(elements.values()), {})
        option = element.get("selected_option")
        value = option.get("value") if option else element.get("value")
        if value is not None:
            values[block_id] = str(value)
    return values


def _block_errors(view: dict[str, Any], errors: dict[str, str]) -> dict[str, str]:
    # Slack rejects errors for block ids the view lacks; a form-wide error goes under the first field.
    inputs = [b["block_id"] for b in view.get("blocks") or [] if b.get("type") == "input"]
    shown: dict[str, str] = {}
    for name, why in errors.items():
        target = name if name in inputs or not inputs else inputs[0]
        shown[target] = f"{shown[target]} {why}" if target in shown else why
    return modal_errors(shown)
