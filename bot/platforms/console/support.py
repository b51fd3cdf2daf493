"""Console messages that belong to a conversation: in a DM or support channel, or a handover card's thread.

``ConsoleAdapter.say`` hands every plain message to its listeners after showing it; this one passes a
message in the writer's DM (``@alice``) or in a channel of ``SWITCHBOARD_SUPPORT_CHANNELS`` to the
conversation service as the user's, and a message in the thread of a handover card to the desk as the
agent's. Anything else is chat between people and is left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import for_platform
from bot.conversations.intake import for_assistant
from bot.identity import Identity, Place
from bot.platforms.console.visibility import dm_owner, reader
from bot.storage.console import Message
from bot.storage.conversations.rows import Inbound

if TYPE_CHECKING:
    from bot.platforms.context import PlatformContext


class ConversationListener:
    """A ``MessageListener`` routing console messages to ``ctx.conversations``."""

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx  # ctx.conversations is made after the platforms, so it is read per message

    async def __call__(self, who: Identity, where: Place, msg: Message) -> None:
        service = self.ctx.conversations
        if service is None:
            return
        key = f"console:{msg.id}"  # a message id is used once, so a repeated call is one message
        if where.thread is not None:
            conv = await service.store.by_card_message("console", [where.thread])
            if conv is not None:
                await service.desk.agent_said(conv, who, msg.text, key)
                return
        direct = dm_owner(where.channel) == reader(who)
        support = not direct and self._support(where.channel)
        if not await for_assistant(service, direct=direct, mentioned=False, support=support):
            return
        # In a support channel the bot answers under the message that started the conversation (or in
        # the thread it is in).
        thread = None if direct else where.thread or str(msg.id)
        await service.user_said(Inbound(who, "console", where.channel, msg.text, thread, key, direct))

    def _support(self, channel: str) -> bool:
        # Entries name a channel bare (``help``, ``#help``) or for one platform (``console:help``).
        entries = for_platform(self.ctx.settings.support_channels, "console")
        return any(value.lstrip("#") == channel for value in entries)
