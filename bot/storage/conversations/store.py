"""Reading and writing conversations: every change a compare-and-set on the row, every transition audited.

Write transactions start with their write (SQLite takes its lock there), so a transition's check and
its effects, the messages and chat rows it writes, commit together or not at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.identity import Identity
from bot.storage import webhooks
from bot.storage.conversations.agents import AgentRows
from bot.storage.conversations.memory import MemoryRows
from bot.storage.conversations.records import RecordRows
from bot.storage.conversations.rows import Conversation, Inbound, Message
from bot.storage.conversations.states import CLOSED, State, can_move
from bot.storage.conversations.tables import (
    conversation_events,
    conversation_messages,
    conversations,
)
from bot.storage.tables import chat_cards


class ConversationStore(AgentRows, MemoryRows, RecordRows):
    """Conversations, their messages and events; agents, memory and records come from the mixins."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- conversations ---------------------------------------------------------------------------

    async def open_for(self, msg: Inbound, now: float) -> tuple[Conversation, bool]:
        """The open conversation of the message's place, created if there is none (and whether it was)."""
        found = await self.open_at(msg.place_key)
        if found is not None:
            return found, False
        conv_id = secrets.token_hex(8)
        row: dict[str, Any] = {
            "id": conv_id,
            "platform": msg.platform,
            "channel": msg.channel,
            "thread": msg.thread,
            "place_key": msg.place_key,
            "user_ref": msg.who.ref,
            "user": msg.who.to_dict(),
            "state": State.NEW.value,
            "version": 1,
            "priority": 1,
            "skills": [],
            "turns": 0,
            "failures": 0,
            "handovers": 0,
            "pings": 0,
            "escalated": False,
            "reminded": False,
            "warned": False,
            "summarized_through": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(conversations.insert(), row)
                await self.event(conn, conv_id, now, msg.who.ref, "created", None, State.NEW, {})
        except sa.exc.IntegrityError:
            # Another delivery created it a moment ago (the open place is unique): use that one.
            found = await self.open_at(msg.place_key)
            assert found is not None, f"no open conversation at {msg.place_key} after a unique clash"
            return found, False
        created = await self.get(conv_id)
        assert created is not None
        return created, True

    async def open_at(self, place_key: str) -> Conversation | None:
        """The open conversation of a place (``Inbound.place_key``), if there is one."""
        query = sa.select(conversations).where(
            conversations.c.place_key == place_key, conversations.c.closed_at.is_(None)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return Conversation.from_row(row) if row is not None else None

    async def get(self, conversation_id: str, conn: AsyncConnection | None = None) -> Conversation | None:
        query = sa.select(conversations).where(conversations.c.id == conversation_id)
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self.engine.connect() as own:
                row = (await own.execute(query)).first()
        return Conversation.from_row(row) if row is not None else None

    async def find(self, ref: str) -> Conversation | None:
        """A conversation by id or by an unambiguous id prefix."""
        exact = await self.get(ref)
        if exact is not None or len(ref) < 4:
            return exact
        query = sa.select(conversations).where(conversations.c.id.startswith(ref, autoescape=True)).limit(2)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return Conversation.from_row(rows[0]) if len(rows) == 1 else None

    async def by_card_message(self, platform: str, refs: list[str]) -> Conversation | None:
        """The conversation whose handover card is the message (or heads the thread) ``refs`` name."""
        query = sa.select(chat_cards.c.key).where(
            chat_cards.c.platform == platform,
            chat_cards.c.key.startswith("conversation:"),
            sa.or_(chat_cards.c.message_ref.in_(refs), chat_cards.c.thread_ref.in_(refs)),
        )
        async with self.engine.connect() as conn:
            key = (await conn.execute(query)).scalar()
        return await self.get(key.partition(":")[2]) if key else None

    async def move(
        self,
        conn: AsyncConnection,
        conv: Conversation,
        target: State,
        actor: str,
        now: float,
        values: dict[str, Any] | None = None,
        detail: dict[str, Any] | None = None,
        where: Any = None,
    ) -> bool:
        """CAS ``conv`` from the state it was read in to ``target``, audited; False if it moved on."""
        if not can_move(conv.state, target):
            return False
        changes = dict(values or {})
        changes.update(state=target.value, version=conversations.c.version + 1, updated_at=now)
        if target in CLOSED:
            changes["closed_at"] = now
        query = conversations.update().where(
            conversations.c.id == conv.id, conversations.c.state == conv.state.value
        )
        if where is not None:
            query = query.where(where)
        if (await conn.execute(query.values(**changes))).rowcount != 1:
            return False
        await self.event(conn, conv.id, now, actor, "transition", conv.state, target, detail or {})
        return True

    async def touch(self, conn: AsyncConnection, conversation_id: str, **values: Any) -> None:
        """Update activity columns (times, flags) without a transition."""
        await conn.execute(
            conversations.update().where(conversations.c.id == conversation_id).values(**values)
        )

    async def event(
        self,
        conn: AsyncConnection,
        conversation_id: str,
        now: float,
        actor: str,
        kind: str,
        before: State | None,
        after: State | None,
        detail: dict[str, Any],
    ) -> None:
        """Append an audit record (no code path updates or deletes them)."""
        await conn.execute(
            conversation_events.insert(),
            {
                "conversation_id": conversation_id,
                "at": now,
                "actor": actor,
                "kind": kind,
                "from_state": before.value if before else None,
                "to_state": after.value if after else None,
                "detail": detail,
            },
        )
        if kind == "transition" and after is not None:  # outbound webhooks hear each change of state
            data = {
                "conversation_id": conversation_id,
                "from": before.value if before else None,
                "to": after.value,
                "actor": actor,
                "detail": detail,
            }
            await webhooks.queue(conn, f"conversation.{after.value.lower()}", data, now)

    async def pending(self) -> list[Conversation]:
        """Every conversation waiting in the queue."""
        query = sa.select(conversations).where(conversations.c.state == State.PENDING_HUMAN.value)
        async with self.engine.connect() as conn:
            return [Conversation.from_row(r) for r in (await conn.execute(query)).all()]

    async def active(self, agent_ref: str | None = None) -> list[Conversation]:
        """Conversations held by agents (by one agent when ``agent_ref`` is given)."""
        query = sa.select(conversations).where(conversations.c.state == State.HUMAN_ACTIVE.value)
        if agent_ref is not None:
            query = query.where(conversations.c.agent_ref == agent_ref)
        async with self.engine.connect() as conn:
            return [Conversation.from_row(r) for r in (await conn.execute(query)).all()]

    async def awaiting_turn(self) -> list[str]:
        """Open conversations of the assistant's holding user messages no turn answered (after a restart)."""
        query = (
            sa.select(conversations.c.id)
            .join(conversation_messages, conversation_messages.c.conversation_id == conversations.c.id)
            .where(
                conversations.c.closed_at.is_(None),
                conversations.c.state.in_(
                    [s.value for s in (State.NEW, State.AI_PROCESSING, State.BACK_TO_AI)]
                ),
                conversation_messages.c.role == "user",
                sa.or_(
                    conversation_messages.c.turn.is_(None),
                    conversation_messages.c.turn > conversations.c.turns,
                ),
            )
            .distinct()
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    # -- messages --------------------------------------------------------------------------------

    async def add_message(
        self,
        conn: AsyncConnection,
        conversation_id: str,
        role: str,
        text: str,
        now: float,
        author: Identity | None = None,
        event_key: str | None = None,
        turn: int | None = None,
        author_name: str | None = None,
    ) -> int:
        """Store a message; returns its id."""
        result = await conn.execute(
            conversation_messages.insert(),
            {
                "conversation_id": conversation_id,
                "at": now,
                "role": role,
                "author_ref": author.ref if author else None,
                "author_name": author_name or (author.name if author else None),
                "text": text,
                "turn": turn,
                "event_key": event_key,
            },
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def claim_turn(
        self,
        conn: AsyncConnection,
        conversation_id: str,
        answered: int,
        owner: str,
        until: float,
        now: float,
        is_dead: Callable[[str], bool],
    ) -> float | None:
        """Claim the turn after ``answered`` for ``owner`` until ``until``, as this transaction's first write.

        Returns None when claimed, else when the current claim lapses. A claim that is free, ours, lapsed
        or held by a process known dead is taken; so two processes that both saw a message never run the
        assistant on it side by side, and a turn whose process died is taken again.
        """
        row = conversations.c
        mine = sa.or_(row.turn_owner.is_(None), row.turn_owner == owner, row.turn_until < now)
        claim = conversations.update().where(row.id == conversation_id, row.turns == answered)
        claimed = await conn.execute(claim.where(mine).values(turn_owner=owner, turn_until=until))
        if claimed.rowcount == 1:
            return None
        held = (
            await conn.execute(sa.select(row.turn_owner, row.turn_until).where(row.id == conversation_id))
        ).first()
        if held is None or held.turn_owner is None:
            return now  # the turn was answered meanwhile: nothing to wait for
        if is_dead(held.turn_owner):
            taken = await conn.execute(
                claim.where(row.turn_owner == held.turn_owner).values(turn_owner=owner, turn_until=until)
            )
            if taken.rowcount == 1:
                return None
        return float(held.turn_until or now)

    async def release_turn(self, conversation_id: str, owner: str) -> None:
        """Give up ``owner``'s claim on the next turn (a turn that ended without storing an answer)."""
        async with self.engine.begin() as conn:
            await self.release_turn_in(conn, conversation_id, owner)

    async def release_turn_in(self, conn: AsyncConnection, conversation_id: str, owner: str) -> None:
        """``release_turn`` inside ``conn``'s transaction."""
        await conn.execute(
            conversations.update()
            .where(conversations.c.id == conversation_id, conversations.c.turn_owner == owner)
            .values(turn_owner=None, turn_until=None)
        )

    async def take_unread(self, conn: AsyncConnection, conversation_id: str, turn: int, answered: int) -> int:
        """Give ``turn`` the user messages no answered turn has read; how many there were.

        Messages a turn took but never answered (the process died mid-turn) are taken again.
        """
        result = await conn.execute(
            conversation_messages.update()
            .where(
                conversation_messages.c.conversation_id == conversation_id,
                conversation_messages.c.role == "user",
                sa.or_(conversation_messages.c.turn.is_(None), conversation_messages.c.turn > answered),
            )
            .values(turn=turn)
        )
        return int(result.rowcount)

    async def messages(self, conversation_id: str, after: int = 0, limit: int | None = None) -> list[Message]:
        """Messages in order (the last ``limit`` of them when given)."""
        query = sa.select(conversation_messages).where(
            conversation_messages.c.conversation_id == conversation_id, conversation_messages.c.id > after
        )
        if limit is not None:
            query = query.order_by(conversation_messages.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = [Message(r.id, r.at, r.role, r.author_name, r.text) for r in rows]
        return sorted(found, key=lambda m: m.id)

    # -- agents ----------------------------------------------------------------------------------

    async def agent_replied(
        self, conn: AsyncConnection, conversation_id: str, agent_ref: str, values: dict[str, Any]
    ) -> bool:
        """Record an agent's reply if they still hold the conversation; True if they do."""
        query = conversations.update().where(
            conversations.c.id == conversation_id,
            conversations.c.state == State.HUMAN_ACTIVE.value,
            conversations.c.agent_ref == agent_ref,
        )
        return bool((await conn.execute(query.values(**values))).rowcount == 1)

    async def assistant_replied(
        self,
        conn: AsyncConnection,
        conversation_id: str,
        turn: int,
        speaking: list[str],
        values: dict[str, Any],
    ) -> bool:
        """Record the assistant's reply for ``turn`` if the conversation is still the assistant's (in one of
        the ``speaking`` states) and no later turn answered first; True if so."""
        query = conversations.update().where(
            conversations.c.id == conversation_id,
            conversations.c.state.in_(speaking),
            conversations.c.turns == turn - 1,
        )
        return bool((await conn.execute(query.values(**values))).rowcount == 1)
