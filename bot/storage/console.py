"""The console's messages: rows of ``console_messages``, the console being a chat server of its own.

A message is text, a card, or both. Thread replies point at their parent with ``thread_id``; an
ephemeral message names its only reader in ``visible_to``; a message the outbox posted keeps the
outbox's ``key``, so a post retried after a crash is found instead of shown twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.journal import Batch, Journal
from bot.storage.tables import console_messages as table
from cards.model import Card

HISTORY = 500  # messages a page loads at start; older ones stay stored
INSERT = table.insert()  # one statement object, so the journal's sqlite3 path compiles it once


@dataclass(frozen=True)
class Message:
    """One stored console message."""

    id: int
    channel: str
    author: str
    text: str
    card: Card | None
    created_at: float
    updated_at: float
    thread_id: int | None = None
    visible_to: str | None = None
    key: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Message:
        return cls(
            id=row.id,
            channel=row.channel,
            author=row.author,
            text=row.text,
            card=Card.from_dict(row.card) if row.card else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            thread_id=row.thread_id,
            visible_to=row.visible_to,
            key=row.key,
        )


class ConsoleStore:
    """Reads and writes console messages.

    Given the runtime's ``journal`` on SQLite, a new message's id is handed out here (one more than the
    last, the newest id being read once) and its row joins the journal's group commit, shared with the
    action log and the runs' steps, instead of taking the write lock in a transaction of its own to
    learn the id from the database. That is safe because one process alone writes a SQLite file
    (``bot.storage.file_lock``), and ids stay in the order messages were added: the journal commits
    queued rows in order. ``add`` still returns only once the row is committed. On PostgreSQL, where
    several processes may share the table, the database numbers each row (INSERT ... RETURNING).
    """

    def __init__(self, engine: AsyncEngine, journal: Journal | None = None) -> None:
        self.engine = engine
        self.journal = journal if journal is not None and engine.dialect.name == "sqlite" else None
        self._last_id: int | None = None  # the newest id handed out (journal mode)
        self._id_lock = asyncio.Lock()

    async def add(
        self,
        channel: str,
        author: str,
        text: str,
        now: float,
        card: Card | None = None,
        thread_id: int | None = None,
        visible_to: str | None = None,
        key: str | None = None,
    ) -> Message:
        """Store a new message and return it with its id."""
        values = {
            "channel": channel,
            "author": author,
            "text": text,
            "card": card.to_dict() if card else None,
            "thread_id": thread_id,
            "visible_to": visible_to,
            "key": key,
            "created_at": now,
            "updated_at": now,
        }
        if self.journal is not None:
            new_id = await self._add_journaled(values)
        else:
            async with self.engine.begin() as conn:
                new_id = (
                    await conn.execute(table.insert().values(**values).returning(table.c.id))
                ).scalar_one()
        return Message(
            id=int(new_id),
            channel=channel,
            author=author,
            text=text,
            card=card,
            created_at=now,
            updated_at=now,
            thread_id=thread_id,
            visible_to=visible_to,
            key=key,
        )

    async def _add_journaled(self, values: dict[str, Any]) -> int:
        assert self.journal is not None
        for attempt in (1, 2):
            row = {"id": await self._next_id(), **values}
            batch = Batch()
            batch.add(INSERT, row)
            try:
                await self.journal.write(batch)
                return int(row["id"])
            except sa.exc.IntegrityError:
                # The key's own uniqueness (a post sent before) is the caller's to handle; an id taken
                # by a row this process did not add (written to the file while it ran) is read again.
                if attempt == 2 or (values["key"] is not None and await self._key_taken(values["key"])):
                    raise
                self._last_id = None
        raise AssertionError("unreachable")

    async def _next_id(self) -> int:
        if self._last_id is None:
            async with self._id_lock:
                if self._last_id is None:
                    async with self.engine.connect() as conn:
                        newest = (await conn.execute(sa.select(sa.func.max(table.c.id)))).scalar()
                    self._last_id = int(newest or 0)
        new_id = (self._last_id or 0) + 1
        self._last_id = new_id
        return new_id

    async def _key_taken(self, key: str) -> bool:
        return await self._one(table.c.key == key) is not None

    async def edit(self, message_id: int, card: Card, now: float) -> Message | None:
        """Replace a message's card (a status card moving on); None when there is no such message."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                table.update()
                .where(table.c.id == message_id)
                .values(card=card.to_dict(), text=card.plain_text(), updated_at=now)
            )
        return await self.get(message_id) if done.rowcount else None

    async def get(self, message_id: int) -> Message | None:
        """A message by id."""
        return await self._one(table.c.id == message_id)

    async def by_key(self, channel: str, key: str) -> Message | None:
        """The message the outbox posted with ``key`` into ``channel``."""
        return await self._one(table.c.key == key, table.c.channel == channel)

    async def visible(self, user: str, channels: list[str], limit: int = HISTORY) -> list[Message]:
        """The newest messages of ``channels`` that ``user`` may see, oldest first: the public ones and
        their DM's. Ephemeral replies in a shared channel are not among them: as in Slack, they are seen
        as they arrive and are gone after a reload (the row stays, so their buttons still work)."""
        query = (
            sa.select(table)
            .where(
                sa.or_(
                    table.c.visible_to.is_(None),
                    sa.and_(table.c.visible_to == user, table.c.channel == f"@{user}"),
                )
            )
            .where(table.c.channel.in_(channels))
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Message.from_row(r) for r in reversed(rows)]

    async def _one(self, *where: sa.ColumnElement[bool]) -> Message | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(table).where(*where))).first()
        return Message.from_row(row) if row is not None else None
