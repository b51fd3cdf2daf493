"""The outbox's rows: cards edited in place and posts sent once, with the claims that share the work.

A claim is a compare-and-set on the row, so several processes can deliver from the same tables and a
row is never sent twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import chat_cards, chat_posts

CARD_BATCH = 200
POST_BATCH = 500


class OutboxRows:
    """The statements the outbox dispatcher runs, one short transaction each."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def due(self, now: float) -> tuple[list[Any], list[Any]]:
        """Cards with a newer version than the one sent, and posts not sent yet, whose retry time has come."""
        cards_q = (
            sa.select(chat_cards)
            .where(chat_cards.c.version > chat_cards.c.sent_version, chat_cards.c.next_at <= now)
            .order_by(chat_cards.c.updated_at)
            .limit(CARD_BATCH)
        )
        posts_q = (
            sa.select(chat_posts)
            .where(chat_posts.c.status.in_(("pending", "sending")), chat_posts.c.next_at <= now)
            .order_by(chat_posts.c.id)
            .limit(POST_BATCH)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(cards_q)).all()), list((await conn.execute(posts_q)).all())

    async def card(self, key: str) -> Any:
        """One card row, or None."""
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(chat_cards).where(chat_cards.c.key == key))).first()

    async def set_thread(self, key: str, thread: str) -> None:
        """Remember the thread started under a card, so its later replies reuse it."""
        async with self.engine.begin() as conn:
            await conn.execute(chat_cards.update().where(chat_cards.c.key == key).values(thread_ref=thread))

    async def claim(
        self,
        kind: str,
        key: str,
        version: int,
        owner: str,
        previous_owner: str | None,
        now: float,
        stale_before: float,
    ) -> bool:
        """Claim a card version or a post for ``owner``; True if this call won it.

        The row may be free, claimed before ``stale_before``, or claimed by ``previous_owner`` (a process
        that is gone). It was read a moment ago and another task may have delivered it since (and cleared
        its claim): only a row still undelivered, as read, may be claimed, so nothing is sent twice.
        """
        table = chat_cards if kind == "card" else chat_posts
        ident = table.c.key == key if kind == "card" else table.c.id == int(key)
        free = sa.or_(
            table.c.claimed_by.is_(None),
            table.c.claimed_at < stale_before,
            table.c.claimed_by == previous_owner if previous_owner else sa.false(),
        )
        undelivered = (
            table.c.status.in_(("pending", "sending"))
            if kind == "post"
            else chat_cards.c.sent_version < version
        )
        values: dict[str, Any] = {"claimed_by": owner, "claimed_at": now}
        if kind == "post":
            values["status"] = "sending"
        async with self.engine.begin() as conn:
            query = table.update().where(ident, free, undelivered).values(**values)
            return (await conn.execute(query)).rowcount == 1

    async def update_card(self, key: str, values: dict[str, Any], orphans_failed: str | None = None) -> None:
        """Write a card's delivery state; with ``orphans_failed``, fail its waiting posts with that error."""
        async with self.engine.begin() as conn:
            await conn.execute(chat_cards.update().where(chat_cards.c.key == key).values(**values))
            if orphans_failed is not None:
                await conn.execute(
                    chat_posts.update()
                    .where(chat_posts.c.parent_key == key, chat_posts.c.status == "pending")
                    .values(status="failed", error=orphans_failed)
                )

    async def update_post(self, post_id: int, values: dict[str, Any]) -> None:
        """Write a post's delivery state."""
        async with self.engine.begin() as conn:
            await conn.execute(chat_posts.update().where(chat_posts.c.id == post_id).values(**values))
