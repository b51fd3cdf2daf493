"""Pacing shared by every process: when the next message of a lane (a channel's posts, a workspace's edits)
may go, as a token bucket in Redis (one Lua script) or in the database (a compare-and-set on a row).

The bucket is kept in its "virtual scheduling" form (GCRA): one number per lane, the theoretical time
the next message is due. A caller waits until the lane's next slot is free and takes it at that moment,
then sends at once: a slot is never taken ahead of time, so a sender that is late (a busy event loop, a
slow machine) cannot end up sending right beside the next one, and a lane never needs a lock held across
a send. Two processes that want the same slot race for it by compare-and-set; the loser waits for the
next.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import chat_pacing

CAS_ATTEMPTS = 50  # each failed compare-and-set means another process took a slot: it cannot go on for long


def next_slot(due: float | None, now: float, every: float, burst: int) -> tuple[float, float]:
    """When a message asked for at ``now`` may go, and the lane's new due time.

    ``due`` is the lane's stored due time (None for a lane never used): ``burst`` messages may go at
    once, then one every ``every`` seconds.
    """
    due = now if due is None else max(due, now)
    return max(now, due - (burst - 1) * every), due + every


class Pacer(Protocol):
    async def reserve(self, lane: str, every: float, burst: int) -> float:
        """Wait for the lane's next slot and take it at the moment it is free; returns the seconds still to
        wait before sending (0: the slot is taken when it is free, so the send goes at once)."""
        ...


# A slot is taken by recording when it was taken, and the send follows at once. The store's clock is read
# during the take, before its answer travels back: a take is counted as sent ``margin`` after that reading,
# and a take whose round trip was slower than its margin leaves its slot unused (the next one is taken, with
# a margin twice that round trip, which shrinks back once takes are fast). So two takes are never closer
# than ``every`` apart, whatever the load; the margin also absorbs what the sender does between its take
# and its request (a busy event loop, the outbox's look-up of a reply's thread). A lane kept busy runs at
# 1 / (every + margin), 0.91 posts/s on Slack.
LATE_TAKE = 0.1
MAX_MARGIN = 1.0


class Margin:
    """How long after its reading of the clock a take counts as sent: LATE_TAKE, more while takes are slow."""

    def __init__(self) -> None:
        self.now = LATE_TAKE
        self.late_takes = 0  # slots left unused because their take was slow

    def kept(self, round_trip: float, used: float) -> bool:
        """Whether a take of this round trip, counted as sent ``used`` after its reading, may send (else
        its slot is left unused)."""
        if round_trip <= used:
            self.now = max(LATE_TAKE, self.now * 0.9)
            return True
        self.late_takes += 1
        self.now = min(MAX_MARGIN, round_trip * 2)
        return False


class DatabasePacer:
    """A row per lane in ``chat_pacing``; the slot is taken by a compare-and-set on ``next_allowed_at``.

    On PostgreSQL the time is the server's (``clock_timestamp()``), so processes on several hosts read one
    clock; on SQLite (one host) it is ``clock``, the wall clock by default.
    """

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.margin = Margin()

    async def reserve(self, lane: str, every: float, burst: int) -> float:
        lost = 0
        while True:
            began = time.monotonic()
            try:
                margin = self.margin.now
                won, wait = await self._try(lane, every, burst, margin)
            except sa.exc.OperationalError:
                # SQLite refuses a write whose read snapshot another process has just overtaken
                # ("database is locked"): that is a lost compare-and-set too.
                if self.engine.dialect.name != "sqlite":
                    raise
                won, wait = False, 0.0
            if won:
                if self.margin.kept(time.monotonic() - began, margin):
                    return 0.0
                continue
            if wait > 0:
                lost = 0
                await asyncio.sleep(wait)
                continue
            lost += 1
            if lost >= CAS_ATTEMPTS:
                raise RuntimeError(f"pacing lane {lane}: {CAS_ATTEMPTS} compare-and-sets in a row lost")
            await asyncio.sleep(0.005)

    async def _try(self, lane: str, every: float, burst: int, margin: float) -> tuple[bool, float]:
        """One attempt: (taken, seconds until the slot when it is not free yet)."""
        async with self.engine.begin() as conn:
            stored_q = sa.select(chat_pacing.c.next_allowed_at).where(chat_pacing.c.lane == lane)
            if self.clock is None and self.engine.dialect.name == "postgresql":
                server_now = sa.select(sa.func.extract("epoch", sa.func.clock_timestamp())).scalar_subquery()
                row = (await conn.execute(sa.select(stored_q.scalar_subquery(), server_now))).one()
                stored, now = row[0], float(row[1])
            else:
                stored = (await conn.execute(stored_q)).scalar_one_or_none()
                now = (self.clock or time.time)()
            send_at, _ = next_slot(stored, now, every, burst)
            if send_at > now:
                return False, send_at - now
            _, due = next_slot(stored, now + margin, every, burst)  # counted as sent at the latest moment
            if stored is None:
                return await self._insert(conn, lane, due), 0.0
            query = (
                chat_pacing.update()
                .where(chat_pacing.c.lane == lane, chat_pacing.c.next_allowed_at == stored)
                .values(next_allowed_at=due)
            )
            return (await conn.execute(query)).rowcount == 1, 0.0

    async def _insert(self, conn: Any, lane: str, due: float) -> bool:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        query = insert(chat_pacing).values(lane=lane, next_allowed_at=due).on_conflict_do_nothing()
        return bool((await conn.execute(query)).rowcount == 1)


# ``next_slot`` in Lua, taking the slot only when it is free now. KEYS[1] the lane; ARGV every, burst,
# the take's margin.
# Redis's own clock, so every host reads the same time. Returns "taken", or the wait as text (Redis turns a
# Lua number into an integer reply, with no fraction).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local every = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local late = tonumber(ARGV[3])
local due = now
local stored = redis.call('GET', KEYS[1])
if stored then due = math.max(tonumber(stored), now) end
local send_at = math.max(now, due - (burst - 1) * every)
if send_at > now then return string.format('%.6f', send_at - now) end
due = math.max(due, now + late) + every
local ttl = math.ceil((due - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', due), 'PX', ttl)
return 'taken'
"""


class RedisPacer:
    """The same bucket in Redis, taken atomically by one Lua script."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(TAKE)
        self.margin = Margin()

    async def reserve(self, lane: str, every: float, burst: int) -> float:
        while True:
            began = time.monotonic()
            margin = self.margin.now
            args = [repr(every), str(burst), repr(margin)]
            answer = await self._script(keys=[self.prefix + lane], args=args)
            if answer not in (b"taken", "taken"):
                await asyncio.sleep(float(answer))
            elif self.margin.kept(time.monotonic() - began, margin):
                return 0.0


def make_pacer(engine: AsyncEngine, redis_url: str | None) -> Pacer:
    """Redis when ``REDIS_URL`` is set, the database otherwise.

    In Redis, the lanes are named after the database: the processes that share one database are one
    deployment (one app, as the platform counts its limits), and another sharing the Redis is not.
    """
    if redis_url:
        import redis.asyncio as aioredis

        where = engine.url.render_as_string(hide_password=True).encode()
        prefix = f"switchboard:pace:{hashlib.sha256(where).hexdigest()[:12]}:"
        return RedisPacer(aioredis.from_url(redis_url), prefix)
    return DatabasePacer(engine)
