"""Secrets Switchboard generates once and every process then shares (rows of ``web_secrets``)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import web_secrets as table


async def stored_secret(engine: AsyncEngine, name: str, now: float) -> str:
    """The secret called ``name``, made and stored by the first process that asks for it."""
    async with engine.begin() as conn:
        found = (await conn.execute(sa.select(table.c.value).where(table.c.name == name))).scalar()
    if found is not None:
        return str(found)
    try:
        async with engine.begin() as conn:
            value = secrets.token_urlsafe(48)
            await conn.execute(table.insert().values(name=name, value=value, created_at=now))
    except sa.exc.IntegrityError:
        pass  # another process made it first: theirs is the one everybody uses
    async with engine.begin() as conn:
        return str((await conn.execute(sa.select(table.c.value).where(table.c.name == name))).scalar_one())
