"""Rows of ``email_links_used`` (the e-mail links that have cast a vote, written in the vote's transaction),
and which approval e-mails are queued already."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.tables import chat_posts
from bot.storage.tables import email_links_used as table


async def use_of(conn: AsyncConnection, link_id: str) -> Any:
    """The recorded use of a link (actor, decision, used_at), or None while it is unused."""
    return (await conn.execute(sa.select(table).where(table.c.link_id == link_id))).first()


async def record_use(
    conn: AsyncConnection, link_id: str, approval_id: str, actor: str, decision: str, now: float
) -> None:
    """Mark a link used; the primary key refuses a second use that raced past ``use_of``."""
    values = {"link_id": link_id, "approval_id": approval_id, "actor": actor, "decision": decision}
    await conn.execute(table.insert().values(**values, used_at=now))


async def queued(conn: AsyncConnection, platform: str, channels: list[str]) -> set[str]:
    """Those of ``channels`` with a post on ``platform`` already (an approver's e-mail, by its channel)."""
    if not channels:
        return set()
    query = sa.select(chat_posts.c.channel).where(
        chat_posts.c.platform == platform, chat_posts.c.channel.in_(channels)
    )
    return set((await conn.execute(query)).scalars())
