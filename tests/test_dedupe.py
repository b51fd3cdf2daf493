"""Delivery dedupe (Slack's event_id) on both backends: a real Redis, and the database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.storage.database import create_engine, migrate
from bot.storage.dedupe import DatabaseDedupe, Dedupe, JournalDedupe, RedisDedupe
from bot.storage.journal import Journal
from tests.helpers import REDIS_URL


@pytest.fixture(params=["redis", "database", "journal"])
async def dedupe(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Dedupe]:
    if request.param == "redis":
        client = aioredis.from_url(REDIS_URL)
        prefix = f"test:{secrets.token_hex(4)}:"
        yield RedisDedupe(client, prefix=prefix)
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    engine = create_engine(db_url)
    await migrate(engine)
    if request.param == "journal":
        journal = Journal(engine)
        journal.start()
        yield JournalDedupe(engine, journal)
        await journal.close()
    else:
        yield DatabaseDedupe(engine)
    await engine.dispose()


async def test_only_the_first_of_many_concurrent_deliveries_wins(dedupe: Dedupe) -> None:
    results = await asyncio.gather(*(dedupe.first("Ev0123", 1000.0) for _ in range(20)))
    assert results.count(True) == 1
    assert await dedupe.first("Ev0456", 1000.0)  # another event is new


async def test_the_database_forgets_a_key_after_its_time(db_url: str) -> None:
    # (Redis expires its keys itself, through EX.)
    engine = create_engine(db_url)
    await migrate(engine)
    dedupe = DatabaseDedupe(engine)
    assert await dedupe.first("Ev1", 1000.0)
    assert not await dedupe.first("Ev1", 1000.0 + 60)
    assert await dedupe.first("Ev1", 1000.0 + 4000)
    await engine.dispose()


async def test_through_the_journal_a_key_marked_before_a_restart_is_still_refused(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    journal = Journal(engine)
    journal.start()
    try:
        before = JournalDedupe(engine, journal)
        assert await before.first("Ev1", 1000.0)
        after = JournalDedupe(engine, journal)  # a new process: it remembers nothing, the database does
        concurrent = await asyncio.gather(*(after.first("Ev1", 1000.0 + 60) for _ in range(5)))
        assert concurrent == [False] * 5
        assert await after.first("Ev2", 1000.0 + 60)
        assert await after.first("Ev1", 1000.0 + 4000)  # expired: it counts as new again
        assert not await JournalDedupe(engine, journal).first("Ev1", 1000.0 + 4001)
    finally:
        await journal.close()
        await engine.dispose()
