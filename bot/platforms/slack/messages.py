"""Slack messages to the bot: DMs, mentions and support channels go to the conversation service; what
agents write under a handover card goes to the desk.

Slack sends a mention in a channel the bot is in twice, as ``app_mention`` and as a ``message`` (with
different ``event_id``s), so a message's key is its ``channel:ts``: both deliveries are one message.
Deliveries are also marked by ``event_id`` on receipt (``bot.storage.dedupe``), as every Slack event is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import for_platform
from bot.conversations.intake import for_assistant, taking_messages
from bot.identity import Identity, Place
from bot.platforms.slack.errors import hint_for, slack_error
from bot.platforms.slack.identity import SlackDirectory
from bot.storage.conversations.rows import Inbound
from cards.slack import escape
from handlers.chat_text import storable

if TYPE_CHECKING:
    from bot.conversations.service import Conversations
    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>\s*")  # <@U0BOT> or <@U0BOT|switchboard>
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
POINTER = (
    "Hi! I run workflows. `/workflow list` shows the ones you can run, `/workflow help NAME` their "
    "inputs, and `/workflow run NAME key=value` starts one."
)

Converse = Callable[[Identity, Place, str], Awaitable[str | None]]


async def point_to_workflow(who: Identity, where: Place, text: str) -> str | None:
    """The answer to a mention or a direct message when conversations are not running."""
    return POINTER


@dataclass(frozen=True)
class Heard:
    """A person's message event, parsed once."""

    kind: str  # "message" or "app_mention"
    team: str
    user: str
    channel: str
    ts: str
    thread_ts: str | None
    text: str
    direct: bool  # a DM with the bot

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Heard | None:
        """The event of an envelope; None for bots, edits, joins and other subtypes."""
        event = body.get("event") or {}
        if event.get("bot_id") or event.get("subtype") or not event.get("user"):
            return None
        if not event.get("channel") or not event.get("ts"):
            return None
        return cls(
            kind=str(event.get("type", "message")),
            team=str(body.get("team_id") or event.get("team") or ""),
            user=str(event["user"]),
            channel=str(event["channel"]),
            ts=str(event["ts"]),
            thread_ts=event.get("thread_ts"),
            text=storable(str(event.get("text") or "")),  # a lone surrogate could not be stored
            direct=event.get("type") == "message" and event.get("channel_type") == "im",
        )

    @property
    def in_thread(self) -> bool:
        """A reply under another message (a thread's parent has ``thread_ts == ts``)."""
        return bool(self.thread_ts) and self.thread_ts != self.ts

    @property
    def key(self) -> str:
        return f"slack:{self.channel}:{self.ts}"


class SlackMessages:
    """The ``message`` and ``app_mention`` listener."""

    def __init__(self, ctx: PlatformContext, client: AsyncWebClient, directory: SlackDirectory) -> None:
        self.ctx = ctx
        self.client = client
        self.directory = directory
        self.converse: Converse = point_to_workflow  # the answer when conversations are not running
        self._names: dict[str, str | None] = {}  # channel id -> name, for #names in support_channels

    async def on_event(self, body: dict[str, Any]) -> None:
        heard = Heard.parse(body)
        if heard is None:
            return
        service = self.ctx.conversations
        if service is None or not taking_messages(service, "slack"):
            await self._point(body, heard)
            return
        # Decide first (a read), mark second: the bot sees every message of the channels it is in,
        # and only the ones for us are worth a dedupe mark.
        card = None
        if heard.in_thread and not heard.direct:
            card = await service.store.by_card_message("slack", [f"{heard.channel}:{heard.thread_ts}"])
        if card is None and not await self._for_assistant(heard, service):
            return
        if not await self._first(body):
            return
        who = await self.directory.identity(heard.team, heard.user)
        if card is not None:
            await service.desk.agent_said(card, who, heard.text, heard.key)
            return
        await service.user_said(self._inbound(heard, who))

    async def _for_assistant(self, heard: Heard, service: Conversations) -> bool:
        mentioned = heard.kind == "app_mention"
        support = not (heard.direct or mentioned) and await self._support(heard.channel)
        place = f"slack:{heard.channel}:{heard.channel}:{heard.thread_ts}" if heard.in_thread else None
        return await for_assistant(
            service, direct=heard.direct, mentioned=mentioned, support=support, thread_place=place
        )

    def _inbound(self, heard: Heard, who: Identity) -> Inbound:
        thread = None if heard.direct else f"{heard.channel}:{heard.thread_ts or heard.ts}"
        if heard.direct and heard.thread_ts:
            # An assistant thread (Slack's AI app surface): each thread is a conversation of its own,
            # answered in the thread, where the thinking status and the streamed answer show.
            thread = f"{heard.channel}:{heard.thread_ts}"
        text = MENTION.sub("", heard.text).strip()
        return Inbound(who, "slack", heard.channel, text, thread, heard.key, heard.direct)

    async def _first(self, body: dict[str, Any]) -> bool:
        # Mark on receipt, by event_id alone: a retry (X-Slack-Retry-Num) of a delivery already taken
        # is dropped, but a retry whose first delivery never reached us is the only copy and is handled.
        event_id = body.get("event_id")
        return not event_id or await self.ctx.dedupe.first(f"slack:{event_id}", self.ctx.clock())

    async def _support(self, channel: str) -> bool:
        """Whether ``channel`` is in SWITCHBOARD_SUPPORT_CHANNELS (by id, or by #name)."""
        names: set[str] = set()
        for value in for_platform(self.ctx.settings.support_channels, "slack"):
            if value == channel:
                return True
            if value.startswith("#") or not CHANNEL_ID.match(value):
                names.add(value.lstrip("#").lower())
        return bool(names) and (await self._name(channel) or "").lower() in names

    async def _name(self, channel: str) -> str | None:
        if channel not in self._names:
            try:
                info = await self.client.conversations_info(channel=channel)
                self._names[channel] = str((info.get("channel") or {}).get("name") or "") or None
            except SlackApiError as exc:  # remembered: one warning, not one per message
                log.warning(
                    "Slack: conversations.info for %s failed: %s; %s (support channels by #name need "
                    "channels:read, or list them by id)",
                    channel,
                    slack_error(exc),
                    hint_for(exc),
                )
                self._names[channel] = None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning(
                    "Slack: conversations.info for %s failed: could not reach Slack (%r)", channel, exc
                )
                return None  # not remembered: the next message asks again
        return self._names[channel]

    # Without conversations: mentions and DMs get a pointer to /workflow.

    async def _point(self, body: dict[str, Any], heard: Heard) -> None:
        if heard.kind == "message" and not heard.direct:
            return  # in channels, only mentions (app_mention) are for us
        if not await self._first(body):
            return
        thread_ts = heard.thread_ts or (heard.ts if heard.kind == "app_mention" else None)
        who = await self.directory.identity(heard.team, heard.user)
        where = Place("slack", heard.channel, thread=f"{heard.channel}:{thread_ts}" if thread_ts else None)
        text = await self.converse(who, where, MENTION.sub("", heard.text).strip())
        if not text:
            return
        try:
            await self.client.chat_postMessage(channel=heard.channel, text=escape(text), thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning(
                "Slack: answering a mention in %s failed: %s; %s",
                heard.channel,
                slack_error(exc),
                hint_for(exc),
            )
