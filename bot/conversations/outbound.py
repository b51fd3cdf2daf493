"""Where a conversation's messages go, written as outbox rows inside the transaction that decided them.

A message is sent only if the transaction that checked the conversation's state commits: a reply the
assistant wrote after an agent claimed the conversation is never stored, so never sent.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config import Settings, for_platform
from bot.identity import Identity, allowed
from bot.storage.cards import add_post, card_row, card_upsert, post_row
from bot.storage.conversations.rows import Conversation
from bot.storage.timers import arm_earliest
from cards.model import Card

CONSOLE_AGENTS = "agents"
DEFAULT_AGENTS = ["group:agents"]  # who sees the agents' channel when SWITCHBOARD_AGENT_GROUPS is unset


def agent_entries(settings: Settings) -> list[str]:
    """Who reads the agents' channel and the queue in the console and the dashboard."""
    return settings.agent_groups or DEFAULT_AGENTS


def sees_the_queue(settings: Settings, who: Identity) -> bool:
    """Whether ``who`` may read the queue, the agents' load and the agents' channel (agents and admins)."""
    return who.admin or allowed(agent_entries(settings), who)


def agents_channel(settings: Settings, platform: str) -> str | None:
    """The agents' channel on ``platform``: ``SWITCHBOARD_AGENTS_CHANNEL`` entries are ``platform:id`` or a
    bare id for every chat platform; the console uses #agents unless told otherwise."""
    return _pick(settings.agents_channel, platform, CONSOLE_AGENTS if platform == "console" else None)


def fallback_channel(settings: Settings, platform: str) -> str | None:
    """Where an unclaimed conversation escalates (``SWITCHBOARD_AGENTS_FALLBACK_CHANNEL``)."""
    return _pick(settings.agents_fallback_channel, platform, None)


def _pick(entries: list[str], platform: str, default: str | None) -> str | None:
    # A bare id is a Slack or Discord channel id, so it never names a console channel.
    values = for_platform(entries, platform, bare=platform != "console")
    if not values:
        return default
    return values[0].lstrip("#") if platform == "console" else values[0]


class Outbound:
    """Writes a conversation's outgoing messages and cards as outbox rows."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.settings = settings
        self.upsert = card_upsert(engine)

    async def to_user(
        self, conn: AsyncConnection, conv: Conversation, card: Card, now: float, replaces: str | None = None
    ) -> None:
        """A message to the user, in their DM or under the thread they wrote in; with ``replaces`` (a
        live preview's message ref) the outbox edits that message into it instead of posting."""
        row = post_row(conv.platform, conv.channel, None, card, now, thread_ref=conv.thread)
        if replaces is not None:
            row["message_ref"] = replaces
        await add_post(conn, row)

    async def to_agents(self, conn: AsyncConnection, conv: Conversation, card: Card, now: float) -> bool:
        """A reply in the thread of the conversation's handover card (False when it has no card)."""
        channel = agents_channel(self.settings, conv.platform)
        if channel is None:
            return False
        await add_post(conn, post_row(conv.platform, channel, conv.card_key, card, now))
        return True

    async def to_channel(
        self, conn: AsyncConnection, platform: str, channel: str, card: Card, now: float
    ) -> None:
        """A message of its own in a channel (an escalation)."""
        await add_post(conn, post_row(platform, channel, None, card, now))

    async def card(self, conn: AsyncConnection, conv: Conversation, card: Card, now: float) -> bool:
        """Post or redraw the handover card (False when the platform has no agents' channel configured)."""
        channel = agents_channel(self.settings, conv.platform)
        if channel is None:
            return False
        await conn.execute(self.upsert, card_row(conv.card_key, conv.platform, channel, card, now))
        return True

    async def timer(self, conn: AsyncConnection, conv_id: str, due_at: float) -> None:
        """Make sure the conversation's timer rings by ``due_at`` (a row in ``timers``; the alarm rings it).

        A conversation keeps one pending timer, at its earliest deadline.
        """
        await arm_earliest(conn, conv_id, "conversation", due_at)
