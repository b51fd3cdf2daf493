"""What each signed-in person may see in the console: the agents' channel is for the agents' group, a
direct message is for its owner, and an ephemeral message is for its one reader.

A console user is known by name (``alice``, DM ``@alice``); anyone else signed in through a provider by
their identity's ref (``slack:U024BE7LH``, DM ``@slack:U024BE7LH``), so two platforms' users never share one.
"""

from __future__ import annotations

from bot.config import Settings
from bot.conversations.outbound import agents_channel, sees_the_queue
from bot.identity import Identity
from bot.storage.console import Message


def reader(who: Identity) -> str:
    """How messages name ``who`` as their only reader (and their DM as ``@`` + this)."""
    return who.name if who.platform == "console" else who.ref


def dm_owner(channel: str) -> str | None:
    """The reader whose direct message with the bot ``channel`` is (``@alice``: alice), else None."""
    return channel[1:] if channel.startswith("@") else None


def may_see_channel(settings: Settings, who: Identity, channel: str) -> bool:
    """Whether ``who`` may read (and write in) ``channel``."""
    owner = dm_owner(channel)
    if owner is not None:
        return owner == reader(who)
    if channel == agents_channel(settings, "console"):
        return sees_the_queue(settings, who)
    return True


def may_see(settings: Settings, who: Identity, msg: Message) -> bool:
    """Whether ``who`` may see one message."""
    return msg.visible_to in (None, reader(who)) and may_see_channel(settings, who, msg.channel)


def channels_for(settings: Settings, who: Identity) -> list[str]:
    """The configured channels ``who`` may see, in their configured order."""
    return [c for c in settings.console_channels if may_see_channel(settings, who, c)]
