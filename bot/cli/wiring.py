"""Wiring: settings to database to runtime, the same way for the bot process and every CLI command."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.runtime.presence import install as install_approval_chat
from bot.runtime.runtime import Runtime
from bot.storage.database import PoolSettings, create_engine, migrate
from bot.storage.runs import RunStore


@contextlib.asynccontextmanager
async def open_database(settings: Settings, client: bool = True) -> AsyncIterator[AsyncEngine]:
    """A migrated database engine, disposed of on exit (a ``client``'s pool is small: a CLI command
    needs a connection or two, and every connection counts against PostgreSQL's max_connections)."""
    pool = PoolSettings.of(settings)
    if client:
        pool = replace(pool, size=min(pool.size, 2), overflow=min(pool.overflow, 2))
    engine = create_engine(settings.database_url, pool)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, resume: bool = True, scope: set[str] | None = None
) -> AsyncIterator[Runtime]:
    """A started runtime (unfinished runs resumed when ``resume``), stopped on exit.

    With a ``scope`` (a set, which the command may add to) it drives only those runs and fires only
    their timers; None makes it a worker, like the bot process.
    """
    async with open_database(settings, client=scope is not None) as engine:
        runtime = Runtime(settings, RunStore(engine), scope=scope)
        # A decision or a resumed run here must update its chat cards like the bot would.
        install_approval_chat(runtime)
        await runtime.start(resume=resume)
        try:
            yield runtime
        finally:
            await runtime.stop()
