"""Human agents as stored: who they are, their skills and capacity, and what they hold now."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.identity import Identity
from bot.storage.conversations.rows import Agent
from bot.storage.conversations.states import State
from bot.storage.conversations.tables import (
    agents,
    conversations,
)


class AgentRows:
    """The agents' rows; part of ``ConversationStore``."""

    engine: AsyncEngine

    async def set_agent(
        self,
        who: Identity,
        now: float,
        available: bool | None = None,
        skills: list[str] | None = None,
        capacity: int = 3,
    ) -> Agent:
        """Register or update an agent; returns them with their current load."""
        async with self.engine.begin() as conn:
            changes: dict[str, Any] = {"name": who.name, "updated_at": now}
            if available is not None:
                changes["available"] = available
                if available:
                    changes["idle_since"] = now
            if skills is not None:
                changes["skills"] = skills
            updated = await conn.execute(agents.update().where(agents.c.ref == who.ref).values(**changes))
            if updated.rowcount == 0:
                await conn.execute(
                    agents.insert(),
                    {
                        "ref": who.ref,
                        "platform": who.platform,
                        "name": who.name,
                        "available": bool(available),
                        "skills": skills or [],
                        "capacity": capacity,
                        "idle_since": now,
                        "updated_at": now,
                    },
                )
        found = await self.agent(who.ref)
        assert found is not None
        return found

    async def agent(self, ref: str) -> Agent | None:
        """One agent, with their load."""
        found = await self.agents(ref)
        return found[0] if found else None

    async def agents(self, ref: str | None = None) -> list[Agent]:
        """Every known agent (or the one ``ref`` names) with the number of conversations they hold."""
        load = (
            sa.select(conversations.c.agent_ref, sa.func.count().label("n"))
            .where(conversations.c.state == State.HUMAN_ACTIVE.value)
            .group_by(conversations.c.agent_ref)
        )
        rows_q = sa.select(agents).order_by(agents.c.name)
        if ref is not None:
            load = load.where(conversations.c.agent_ref == ref)
            rows_q = rows_q.where(agents.c.ref == ref)
        async with self.engine.connect() as conn:
            counts = {r.agent_ref: r.n for r in (await conn.execute(load)).all()}
            rows = (await conn.execute(rows_q)).all()
        return [
            Agent(
                r.ref,
                r.platform,
                r.name,
                bool(r.available),
                tuple(r.skills or ()),
                r.capacity,
                r.idle_since,
                counts.get(r.ref, 0),
            )
            for r in rows
        ]

    async def load_of(self, conn: AsyncConnection, agent_ref: str) -> int:
        query = sa.select(sa.func.count()).where(
            conversations.c.state == State.HUMAN_ACTIVE.value, conversations.c.agent_ref == agent_ref
        )
        return int((await conn.execute(query)).scalar_one())

    # -- memory ----------------------------------------------------------------------------------

    async def lock_agent(self, conn: AsyncConnection, agent_ref: str) -> None:
        """On PostgreSQL, hold the agent's row until commit, so one agent's claims queue for the capacity
        check (SQLite's single writer already serialises them)."""
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(agents.c.ref).where(agents.c.ref == agent_ref).with_for_update())

    async def agent_busy(self, conn: AsyncConnection, agent_ref: str, now: float) -> None:
        """The agent took a conversation: no longer idle."""
        await conn.execute(agents.update().where(agents.c.ref == agent_ref).values(idle_since=now))
