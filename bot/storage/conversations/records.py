"""A conversation's records: its transcript once resolved, and the figures the analytics read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.conversations.states import State
from bot.storage.conversations.tables import (
    agents,
    conversation_events,
    conversation_transcripts,
    conversations,
)


class RecordRows:
    """Transcripts and analytics rows; part of ``ConversationStore``."""

    engine: AsyncEngine

    async def save_transcript(
        self, conn: AsyncConnection, conversation_id: str, text: str, now: float
    ) -> None:
        """Keep the transcript of a resolved conversation."""
        row = {"conversation_id": conversation_id, "at": now, "text": text}
        await conn.execute(conversation_transcripts.insert(), row)

    async def transcript(self, conversation_id: str) -> str | None:
        """The stored transcript, or None while the conversation is open."""
        query = sa.select(conversation_transcripts.c.text).where(
            conversation_transcripts.c.conversation_id == conversation_id
        )
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar()
        return None if found is None else str(found)

    async def add_usage(
        self, conversation_id: str, prompt_tokens: int, completion_tokens: int, seconds: float
    ) -> None:
        """Count one assistant turn's tokens and time (the cost figures), whatever became of its reply."""
        c = conversations.c
        async with self.engine.begin() as conn:
            await conn.execute(
                conversations.update()
                .where(c.id == conversation_id)
                .values(
                    prompt_tokens=c.prompt_tokens + prompt_tokens,
                    completion_tokens=c.completion_tokens + completion_tokens,
                    ai_seconds=c.ai_seconds + seconds,
                )
            )

    async def rate(self, conn: AsyncConnection, conversation_id: str, stars: int, now: float) -> bool:
        """Set the rating once: a compare-and-set on the rating still being empty."""
        c = conversations.c
        done = await conn.execute(
            conversations.update()
            .where(c.id == conversation_id, c.rating.is_(None))
            .values(rating=stars, rated_at=now)
        )
        return bool(done.rowcount)

    async def figures_since(self, since: float) -> tuple[list[Any], list[Any], list[Any]]:
        """For the analytics: the conversations created since ``since``, their claims (conversation id,
        agent, time) and every agent's ref and name."""
        query = sa.select(conversations).where(conversations.c.created_at >= since)
        claims = sa.select(
            conversation_events.c.conversation_id, conversation_events.c.actor, conversation_events.c.at
        ).where(conversation_events.c.to_state == State.HUMAN_ACTIVE.value, conversation_events.c.at >= since)
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).all())
            claimed = list((await conn.execute(claims)).all())
            agent_rows = list((await conn.execute(sa.select(agents.c.ref, agents.c.name))).all())
        return rows, claimed, agent_rows
