"""A conversation service on a real database and runtime, with the real openai client and a fake server.

Outgoing messages are read back from the outbox tables (what would be sent, and where), so these tests
need no chat platform; the platform tests drive the same service through Slack, Discord and the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from bot.conversations.service import Conversations, make_conversations
from bot.identity import Identity
from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.storage.conversations.rows import Conversation, Inbound
from bot.storage.conversations.tables import conversation_events
from bot.storage.tables import chat_cards, chat_posts
from cards.model import Card

T = TypeVar("T")


def person(name: str, platform: str = "console", groups: tuple[str, ...] = ()) -> Identity:
    return Identity(platform, platform, name, name, frozenset(groups))


def said(who: Identity, text: str, key: str | None = None, channel: str | None = None) -> Inbound:
    """A DM from ``who`` (the console names a DM channel after its user)."""
    return Inbound(who, who.platform, channel or f"@{who.name}", text, event_key=key, direct=True)


@dataclass
class Env:
    runtime: Runtime
    service: Conversations

    @property
    def engine(self) -> Any:
        return self.runtime.store.engine

    async def posts(self, channel: str | None = None, parent: str | None = None) -> list[Card]:
        query = sa.select(chat_posts).order_by(chat_posts.c.id)
        if channel is not None:
            query = query.where(chat_posts.c.channel == channel)
        if parent is not None:
            query = query.where(chat_posts.c.parent_key == parent)
        async with self.engine.connect() as conn:
            return [Card.from_dict(r.card) for r in (await conn.execute(query)).all()]

    async def texts(self, channel: str | None = None, parent: str | None = None) -> list[str]:
        return [c.plain_text() for c in await self.posts(channel, parent)]

    async def card(self, conv: Conversation) -> Card | None:
        query = sa.select(chat_cards.c.card).where(chat_cards.c.key == conv.card_key)
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar()
        return Card.from_dict(found) if found else None

    async def get(self, conv_id: str) -> Conversation:
        found = await self.service.store.get(conv_id)
        assert found is not None
        return found

    async def events(self, conv_id: str) -> list[tuple[str, str | None]]:
        query = (
            sa.select(conversation_events.c.kind, conversation_events.c.to_state)
            .where(conversation_events.c.conversation_id == conv_id)
            .order_by(conversation_events.c.id)
        )
        async with self.engine.connect() as conn:
            return [(r.kind, r.to_state) for r in (await conn.execute(query)).all()]


async def make_env(runtime: Runtime) -> Env:
    service = make_conversations(runtime, Catalog(runtime.settings.workflows_dir), lambda: None)
    await service.start()
    return Env(runtime, service)
