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


def card_row(
    key: str, platform: str, channel: str, card: Card, now: float, parent_key: str | None = None
) -> dict[str, Any]:
    """The parameters of ``card_upsert`` for a card that is new or changed.

    With ``parent_key`` the card lives in the thread of that card (posted there as a reply once the
    parent is posted, then edited in place like any card); without it, it is posted in ``channel``.
    """
    return {
        "key": key,
        "parent_key": parent_key,
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


def card_note() -> Executable:
    """Replace the card of a row that exists (nothing when it does not) and bump its version.

    Parameters: ``_key``, ``_card`` (a card dict) and ``_at``. For a note on a card whose writer is gone
    (an llm step's message that a crash broke off), where posting a new message would say nothing.
    """
    return (
        chat_cards.update()
        .where(chat_cards.c.key == sa.bindparam("_key"))
        .values(
            card=sa.bindparam("_card", type_=chat_cards.c.card.type),
            version=chat_cards.c.version + 1,
            updated_at=sa.bindparam("_at", type_=sa.Float),
        )
    )


def card_rekey() -> Executable:
    """Move a posted card row to a new key (``_key`` to ``_new``), keeping its message, which later
    versions under the new key edit. A row not posted yet keeps its key: the outbox may have to find its
    message by that key after a crash mid-post."""
    new: sa.BindParameter[str] = sa.bindparam("_new", type_=sa.String)
    taken = chat_cards.alias("taken")
    free = ~sa.exists().where(taken.c.key == new)  # never onto a row that exists: that would fail the commit
    return (
        chat_cards.update()
        .where(chat_cards.c.key == sa.bindparam("_key"), chat_cards.c.message_ref.is_not(None), free)
        .values(key=new)
    )
