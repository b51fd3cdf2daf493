"""Chat card and post rows: the statements that put a card, or a message sent once, in the outbox's tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from bot.storage.tables import chat_cards, chat_posts
from cards.model import Card


def card_upsert(engine: AsyncEngine) -> Executable:
    """Insert a card row, or replace its card and bump its version (the outbox sends the newest only).

    The statement is built once per engine (its dialect spells the upsert) and reused for every row.
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    ins = insert(chat_cards)
    return ins.on_conflict_do_update(
        index_elements=[chat_cards.c.key],
        set_={
            "card": ins.excluded.card,
            "version": chat_cards.c.version + 1,
            "updated_at": ins.excluded.updated_at,
        },
    )


def card_row(key: str, platform: str, channel: str, card: Card, now: float) -> dict[str, Any]:
    """The parameters of ``card_upsert`` for a card that is new or changed."""
    return {
        "key": key,
        "platform": platform,
        "channel": channel,
        "card": card.to_dict(),
        "version": 1,
        "sent_version": 0,
        "attempts": 0,
        "next_at": 0.0,
        "updated_at": now,
    }


def post_row(
    platform: str,
    channel: str,
    parent_key: str | None,
    card: Card,
    now: float,
    thread_ref: str | None = None,
) -> dict[str, Any]:
    """The parameters of ``chat_posts.insert()`` for a message sent once.

    It goes into the thread of ``parent_key``'s card, or of the platform message ``thread_ref``, or
    straight into ``channel`` when neither is given.
    """
    return {
        "platform": platform,
        "channel": channel,
        "parent_key": parent_key,
        "thread_ref": thread_ref,
        "card": card.to_dict(),
        "status": "pending",
        "attempts": 0,
        "next_at": 0.0,
        "created_at": now,
    }


async def cards_by_key(engine: AsyncEngine, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored cards (as dicts) of those ``keys`` that have one."""
    query = sa.select(chat_cards.c.key, chat_cards.c.card).where(chat_cards.c.key.in_(keys))
    async with engine.connect() as conn:
        return {r.key: r.card for r in (await conn.execute(query)).all()}


async def card_places(conn: AsyncConnection, keys: list[str]) -> list[Any]:
    """The stored cards among ``keys``, each with its ``key``, ``platform`` and ``channel``."""
    query = sa.select(chat_cards.c.key, chat_cards.c.platform, chat_cards.c.channel).where(
        chat_cards.c.key.in_(keys)
    )
    return list((await conn.execute(query)).all())


async def redraw(conn: AsyncConnection, keys: list[str], card: Card, now: float) -> None:
    """Replace the card of every row in ``keys`` and bump their versions, so the outbox edits each once."""
    await conn.execute(
        chat_cards.update()
        .where(chat_cards.c.key.in_(keys))
        .values(card=card.to_dict(), version=chat_cards.c.version + 1, updated_at=now)
    )


async def add_post(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Queue one message to send once (see ``post_row``)."""
    await conn.execute(chat_posts.insert(), row)


def post_insert() -> Executable:
    """The statement that queues a post (parameters from ``post_row``), for a batch to reuse."""
    return chat_posts.insert()
