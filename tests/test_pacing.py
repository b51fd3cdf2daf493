"""Pacing shared by processes: the bucket's rule, and its two stores (a database row, a Redis key) taken
by several pacers at once, as separate processes take them."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from bot.storage.database import create_engine, migrate
from bot.storage.pacing import LATE_TAKE, MAX_MARGIN, DatabasePacer, Margin, RedisPacer, next_slot
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


def test_a_slow_take_is_left_unused_and_widens_the_margin_until_takes_are_fast_again() -> None:
    margin = Margin()
    assert margin.kept(0.01, margin.now) and margin.now == LATE_TAKE
    assert not margin.kept(0.2, LATE_TAKE)  # its send would go 0.2 s after the moment it was counted at
    assert margin.now == 0.4 and margin.late_takes == 1
    assert margin.kept(0.2, margin.now)
    for _ in range(40):
        margin.kept(0.01, margin.now)
    assert margin.now == LATE_TAKE
    assert not margin.kept(5.0, LATE_TAKE) and margin.now == MAX_MARGIN


async def _takes(pacers: list[Any], lane: str, every: float, n: int) -> list[float]:
    """``n`` sends into ``lane`` by turns of the pacers, all at once: when each was let go (monotonic)."""
    times: list[float] = []

    async def send(i: int) -> None:
        await asyncio.sleep(await pacers[i % len(pacers)].reserve(lane, every, 1))
        times.append(time.monotonic())  # the send would go now

    await asyncio.gather(*(send(i) for i in range(n)))
    return sorted(times)


def closest(times: list[float]) -> float:
    return min(b - a for a, b in itertools.pairwise(times))


async def test_pacers_on_one_database_never_let_two_sends_closer_than_the_interval(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(2)]  # two connection pools, as two processes hold
    try:
        await migrate(engines[0])
        pacers = [DatabasePacer(engine) for engine in engines]
        times = await _takes(pacers, "slack:C0OPS:post", 0.2, 8)
        assert len(times) == 8
        # A slot is taken at the moment it is free and the send goes at once: a slow take leaves its slot
        # unused, so two sends are never closer than the interval, however loaded.
        assert closest(times) >= 0.2
        # Another lane (edits, or another channel) has slots of its own: its burst goes at once.
        assert await pacers[1].reserve("slack:*:edit", 60.0, 10) == 0.0
        assert await pacers[0].reserve("slack:*:edit", 60.0, 10) == 0.0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_pacers_on_one_redis_never_let_two_sends_closer_than_the_interval() -> None:
    clients = [aioredis.from_url(REDIS_URL) for _ in range(2)]
    prefix = f"test:{secrets.token_hex(4)}:"
    try:
        pacers = [RedisPacer(client, prefix) for client in clients]
        times = await _takes(pacers, "slack:C0OPS:post", 0.2, 8)
        assert len(times) == 8 and closest(times) >= 0.2
        assert await pacers[0].reserve("slack:C0OTHER:post", 10.0, 1) == 0.0
    finally:
        keys = await clients[0].keys(prefix + "*")
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()
