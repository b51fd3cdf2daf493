"""Wiring: settings to database to runtime, the same way for the bot process and every CLI command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.log_context import JsonFormatter
from bot.runtime.presence import install as install_approval_chat
from bot.runtime.runtime import Runtime
from bot.storage import redaction
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated database engine, disposed of on exit."""
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, resume: bool = True) -> AsyncIterator[Runtime]:
    """A started runtime (unfinished runs resumed when ``resume``), stopped on exit."""
    async with open_database(settings) as engine:
        runtime = Runtime(settings, RunStore(engine))
        # A decision or a resumed run here must update its chat cards like the bot would.
        install_approval_chat(runtime)
        await runtime.start(resume=resume)
        try:
            yield runtime
        finally:
            await runtime.stop()


def configure_logging(level: str, fmt: str = "text") -> None:
    """Logs on stderr: plain, timestamped lines, or (``fmt="json"``) one JSON object a line."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        handler.addFilter(redaction.LogMask())  # a traceback may quote a secret an action was given
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
