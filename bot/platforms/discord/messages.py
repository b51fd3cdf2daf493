"""Discord messages to the bot (MESSAGE_CREATE): DMs, mentions and support channels go to the conversation
service; what agents write in a handover card's thread goes to the desk.

A thread started from a message has that message's id, so a thread is found by its own id: the handover
card's (``chat_cards.thread_ref``, or ``message_ref`` "channel:message"), or the user-side thread the bot
answers in ("parent:thread", the ``Inbound.thread`` of the message that started it). Reading message text
needs the privileged Message Content intent; without it Discord sends empty ``content`` except in DMs and
mentions. A message's key is ``discord:<message id>``: a delivery seen twice (a gateway resume replays
events) is one message.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from bot.config import for_platform
from bot.conversations.intake import for_assistant, taking_messages
from bot.identity import Identity
from bot.platforms.discord.commands import Identities
from bot.storage.conversations.rows import Inbound
from handlers.chat_text import storable

if TYPE_CHECKING:
    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
MENTION = re.compile(r"<@!?(\d+)>\s*")
THREADS = (discord.ChannelType.public_thread, discord.ChannelType.private_thread)


class DiscordMessages:
    """The ``on_message`` listener."""

    def __init__(self, ctx: PlatformContext, identities: Identities) -> None:
        self.ctx = ctx
        self.identities = identities
        self._parents: dict[int, int | None] = {}  # channel id -> its parent's id if it is a thread

    async def on_message(self, client: discord.Client, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None or client.user is None:
            return  # our own cards, other bots, webhooks
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return  # joins, pins, "started a thread" and other system messages
        service = self.ctx.conversations
        if service is None or not taking_messages(service, "discord"):
            return
        direct = message.guild is None
        parent = None if direct else await self._parent(client, message.channel)
        mentioned = any(u.id == client.user.id for u in message.mentions)
        channel_id = message.channel.id
        if parent is not None:  # in a thread: a handover card's, or a user-side one
            card = await service.store.by_card_message("discord", [str(channel_id), f"{parent}:{channel_id}"])
            if card is not None:
                who = await self._who(client, message)
                await service.desk.agent_said(card, who, storable(message.content), _key(message))
                return
        home = parent if parent is not None else channel_id
        # A reply in the thread where the bot answers a mention needs no second mention.
        place = f"discord:{home}:{home}:{channel_id}" if parent is not None else None
        support = not (direct or mentioned) and self._support(client, home)
        if not await for_assistant(
            service, direct=direct, mentioned=mentioned, support=support, thread_place=place
        ):
            return
        text = storable(MENTION.sub("", message.content).strip())  # a lone surrogate could not be stored
        if not text:
            return
        if direct:
            thread = None
        elif parent is not None:
            thread = f"{parent}:{channel_id}"  # the thread started from the user's first message
        else:
            thread = f"{channel_id}:{message.id}"
        who = await self._who(client, message)
        await service.user_said(
            Inbound(who, "discord", str(home), text, thread, _key(message), direct=direct)
        )

    async def _who(self, client: discord.Client, message: discord.Message) -> Identity:
        guild = message.guild.id if message.guild else None
        return await self.identities.of_user(client, message.author, guild)

    async def _parent(self, client: discord.Client, channel: Any) -> int | None:
        """The parent channel's id when ``channel`` is a thread (fetched once if it is not cached)."""
        if isinstance(channel, discord.Thread):
            return channel.parent_id
        if isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.StageChannel):
            return None
        if channel.id not in self._parents:
            try:
                found = await client.fetch_channel(channel.id)
            except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
                log.warning("Discord: could not look up channel %s: %s", channel.id, exc)
                return None  # not remembered: the next message asks again
            self._parents[channel.id] = found.parent_id if isinstance(found, discord.Thread) else None
        return self._parents[channel.id]

    def _support(self, client: discord.Client, channel_id: int) -> bool:
        """Whether the channel is in SWITCHBOARD_SUPPORT_CHANNELS (by id, or by #name)."""
        found = client.get_channel(channel_id)
        name = getattr(found, "name", None)
        for value in for_platform(self.ctx.settings.support_channels, "discord"):
            if value == str(channel_id) or (name and value.lstrip("#").lower() == name.lower()):
                return True
        return False


def _key(message: discord.Message) -> str:
    return f"discord:{message.id}"
