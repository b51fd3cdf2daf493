"""Idempotency keys of the REST API: which run a caller's keyed POST started.

A key is claimed by inserting its row before the run is submitted; a second request with the same key
finds the row and is answered with that run, so a retried POST starts one run. The row names the run id
the first request chose, so the answer is the same whether or not the first request has finished.
A key is kept for KEEP_SECONDS (a day, as the IETF draft suggests): a retry comes within minutes, and a
key sent again after that starts a new run.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import api_idempotency

KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class KeyedRequest:
    """A claimed key: the request it was first sent with (its hash) and the run that request starts."""

    actor: str
    key: str
    request_hash: str
    run_id: str
    created_at: float


async def claim(engine: AsyncEngine, wanted: KeyedRequest) -> KeyedRequest | None:
    """Claim ``wanted.key`` for ``wanted.actor``: None when claimed now, else the earlier claim."""
    try:
        async with engine.begin() as conn:
            # Writes first, so SQLite queues this transaction instead of failing it.
            await conn.execute(
                api_idempotency.delete().where(
                    api_idempotency.c.actor == wanted.actor,
                    api_idempotency.c.key == wanted.key,
                    api_idempotency.c.created_at < wanted.created_at - KEEP_SECONDS,
                )
            )
            await conn.execute(api_idempotency.insert(), wanted.__dict__)
        return None
    except sa.exc.IntegrityError:
        pass
    async with engine.connect() as conn:
        query = api_idempotency.select().where(
            api_idempotency.c.actor == wanted.actor, api_idempotency.c.key == wanted.key
        )
        row = (await conn.execute(query)).mappings().first()
    if row is None:  # released between the insert and the read: the caller may try again
        return await claim(engine, wanted)
    return KeyedRequest(**dict(row))


async def release(engine: AsyncEngine, actor: str, key: str) -> None:
    """Forget a claim whose request started nothing (its inputs were refused), so the key may be reused."""
    async with engine.begin() as conn:
        await conn.execute(
            api_idempotency.delete().where(api_idempotency.c.actor == actor, api_idempotency.c.key == key)
        )
