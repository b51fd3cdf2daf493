"""Pacing shared by processes: the bucket's rule, and its two stores (a database row, a Redis key) taken
by several pacers at once, as separate processes take them."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from bot.storage.database import create_engine, migrate
from bot.storage.pacing import DatabasePacer, RedisPacer, next_slot
from tests.conftest import FakeClock
from tests.helpers import REDIS_URL


def test_a_lane_lets_its_burst_go_at_once_then_one_message_every_interval() -> None:
    due, slots = None, []
    for _ in range(5):
        send_at, due = next_slot(due, 100.0, 1.0, burst=3)
        slots.append(send_at)
    assert slots == [100.0, 100.0, 100.0, 101.0, 102.0]
    # A lane left alone refills: later, a burst may go at once again.
    assert next_slot(due, 200.0, 1.0, burst=3)[0] == 200.0


def test_a_lane_of_one_spaces_every_message_by_the_interval() -> None:
    due, slots = None, []
    for now in (10.0, 10.2, 10.4, 13.5):
        send_at, due = next_slot(due, now, 1.0, burst=1)
        slots.append(send_at)
    assert slots == [10.0, 11.0, 12.0, 13.5]


async def test_pacers_on_one_database_never_give_out_the_same_slot(db_url: str) -> None:
    clock = FakeClock()
    engines = [create_engine(db_url) for _ in range(2)]  # two connection pools, as two processes hold
    try:
        await migrate(engines[0])
        pacers = [DatabasePacer(engine, clock) for engine in engines]
        waits = await asyncio.gather(*(pacers[i % 2].reserve("slack:C0OPS:post", 1.0, 1) for i in range(10)))
        assert sorted(waits) == [float(i) for i in range(10)]  # one a second, none twice
        # Another lane (edits, or another channel) has slots of its own.
        assert await pacers[1].reserve("slack:*:edit", 1.2, 10) == 0.0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_pacers_on_one_redis_never_give_out_the_same_slot() -> None:
    clients = [aioredis.from_url(REDIS_URL) for _ in range(2)]
    prefix = f"test:{secrets.token_hex(4)}:"
    try:
        pacers = [RedisPacer(client, prefix) for client in clients]
        waits = await asyncio.gather(*(pacers[i % 2].reserve("slack:C0OPS:post", 10.0, 1) for i in range(6)))
        # Each call is told how long until its own slot, by Redis's clock at the moment its script ran. The six
        # scripts run within a moment of each other, so the waits fall near 0, 10, ... 50 s: one slot each, none
        # twice. Rounding to the slot keeps the check about slots, not about how fast this machine is today.
        assert sorted(round(wait / 10.0) for wait in waits) == list(range(6))
        assert await pacers[0].reserve("slack:C0OTHER:post", 10.0, 1) == 0.0
    finally:
        keys = await clients[0].keys(prefix + "*")
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()
