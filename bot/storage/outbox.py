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

    async def claim_card(
        self, key: str, owner: str, previous_owner: str | None, now: float, stale_before: float
    ) -> Any:
        """Claim a card's newest unsent version for ``owner``: its row as claimed, or None if lost.

        The row may be free, claimed before ``stale_before``, or claimed by ``previous_owner`` (a process
        that is gone). The row answers with what it holds now (its newest card, and the message another
        process may have posted since it was read), so a card posted once is edited, never posted again.
        A claim of a card not posted yet counts a try of its first post: after the first, whoever holds
        the claim asks the platform whether an earlier try got through before posting.
        """
        first_post = chat_cards.c.message_ref.is_(None)
        query = (
            chat_cards.update()
            .where(
                chat_cards.c.key == key,
                self._free(chat_cards, previous_owner, stale_before),
                chat_cards.c.sent_version < chat_cards.c.version,
                chat_cards.c.next_at <= now,
            )
            .values(
                claimed_by=owner,
                claimed_at=now,
                post_tries=sa.case((first_post, chat_cards.c.post_tries + 1), else_=chat_cards.c.post_tries),
            )
            .returning(
                chat_cards.c.card,
                chat_cards.c.version,
                chat_cards.c.message_ref,
                chat_cards.c.thread_ref,
                chat_cards.c.post_tries,
                chat_cards.c.attempts,
            )
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(query)).first()

    async def claim_post(
        self,
        post_id: int,
        status: str,
        owner: str,
        previous_owner: str | None,
        now: float,
        stale_before: float,
    ) -> bool:
        """Claim a post still in ``status`` (as read) for ``owner``; True if this call won it.

        A post another task has sent, or tried and left "sending" (maybe sent), since it was read is
        not this caller's to send: only the status it read tells it whether to look for an earlier send.
        """
        query = (
            chat_posts.update()
            .where(
                chat_posts.c.id == post_id,
                chat_posts.c.status == status,
                self._free(chat_posts, previous_owner, stale_before),
                chat_posts.c.next_at <= now,
            )
            .values(claimed_by=owner, claimed_at=now, status="sending")
        )
        async with self.engine.begin() as conn:
            return bool((await conn.execute(query)).rowcount == 1)

    @staticmethod
    def _free(table: sa.Table, previous_owner: str | None, stale_before: float) -> sa.ColumnElement[bool]:
        return sa.or_(
            table.c.claimed_by.is_(None),
            table.c.claimed_at < stale_before,
            table.c.claimed_by == previous_owner if previous_owner else sa.false(),
        )

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
