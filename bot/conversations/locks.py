"""Per-conversation locks behind one interface: Redis when ``REDIS_URL`` is set, in-process otherwise.

A turn holds its conversation's lock from reading the new messages to storing the reply, so two
processes (or two quick deliveries) never run turns of one conversation side by side. The lock does
not decide who may speak: the state does, checked in the same transaction that stores the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from bot.errors import UpstreamUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis


class Locks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        """``async with locks.hold(key):`` runs the block while no one else holds ``key``."""
        ...

    async def close(self) -> None: ...


class LocalLocks:
    """asyncio locks, one per key while anyone holds or waits for it (nothing kept after)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks.get(key, (lock, 1))
            if users <= 1:
                self._locks.pop(key, None)
            else:
                self._locks[key] = (lock, users - 1)

    async def close(self) -> None:
        self._locks.clear()


class RedisLocks:
    """redis-py's lock (SET NX PX with a token, released by a script), shared by every bot process.

    ``ttl`` bounds how long a crashed holder blocks others; it must outlast the longest turn.
    """

    def __init__(
        self, redis: Redis, prefix: str = "sb:lock:", ttl: float = 300.0, wait: float = 330.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self.wait = wait

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        from redis.exceptions import LockError, RedisError

        lock = self.redis.lock(f"{self.prefix}{key}", timeout=self.ttl, blocking_timeout=self.wait)
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise UpstreamUnavailable(f"cannot reach Redis for the conversation lock: {exc}") from None
        if not acquired:
            raise UpstreamUnavailable(f"the conversation {key} stayed locked for {self.wait:g}s")
        try:
            yield
        finally:
            # It may have expired (the turn outlived ttl) and be someone else's now: leave it be.
            with contextlib.suppress(LockError):
                await lock.release()

    async def close(self) -> None:
        await self.redis.aclose()


def make_locks(redis_url: str | None, prefix: str = "sb:lock:", ttl: float = 300.0) -> Locks:
    """Redis locks when a Redis URL is configured, in-process locks otherwise."""
    if not redis_url:
        return LocalLocks()
    from redis.asyncio import Redis

    return RedisLocks(Redis.from_url(redis_url), prefix=prefix, ttl=ttl, wait=ttl + 30.0)
