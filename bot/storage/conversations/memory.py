"""What the assistant remembers per conversation, bounded and expiring."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.conversations.tables import (
    conversation_memory,
)

MEMORY_KEYS = 20  # facts kept per conversation; the oldest go first
MEMORY_VALUE = 500


class MemoryRows:
    """The memory rows; part of ``ConversationStore``."""

    engine: AsyncEngine

    async def remember(self, conversation_id: str, key: str, value: str, now: float, ttl: float) -> None:
        """Keep a fact for ``ttl`` seconds; past MEMORY_KEYS facts the oldest is forgotten."""
        key, value = key.strip()[:80], value.strip()[:MEMORY_VALUE]
        mine = conversation_memory.c.conversation_id == conversation_id
        async with self.engine.begin() as conn:
            await conn.execute(
                conversation_memory.delete().where(
                    mine, sa.or_(conversation_memory.c.key == key, conversation_memory.c.expires_at <= now)
                )
            )
            await conn.execute(
                conversation_memory.insert(),
                {
                    "conversation_id": conversation_id,
                    "key": key,
                    "value": value,
                    "updated_at": now,
                    "expires_at": now + ttl,
                },
            )
            keep = (
                sa.select(conversation_memory.c.key)
                .where(mine)
                .order_by(conversation_memory.c.updated_at.desc())
                .limit(MEMORY_KEYS)
            )
            await conn.execute(
                conversation_memory.delete().where(mine, conversation_memory.c.key.not_in(keep))
            )

    async def recall(self, conversation_id: str, now: float) -> dict[str, str]:
        """The facts that have not expired."""
        query = sa.select(conversation_memory.c.key, conversation_memory.c.value).where(
            conversation_memory.c.conversation_id == conversation_id, conversation_memory.c.expires_at > now
        )
        async with self.engine.connect() as conn:
            return {r.key: r.value for r in (await conn.execute(query)).all()}
