"""Helpers for tests: the one polling helper (``eventually``), the test Redis URL, loading workflow text,
and waiting on a run's stored state."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime.runtime import Runtime
from bot.storage.tables import chat_cards, chat_posts
from engine.loader import LoadedWorkflow, load_text

T = TypeVar("T")

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The Redis the tests use; set ``TEST_REDIS_URL`` to use another server or database (default: database 0)."""

POLL = 0.02


async def eventually(
    probe: Callable[[], T | Awaitable[T | None] | None],
    timeout: float = 20.0,
    message: str | None = None,
    interval: float = POLL,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that value.

    The one polling helper of the test suite. When ``timeout`` seconds pass first, fail with an
    AssertionError naming what was awaited (``message``, else the probe's name) and its last value.
    Exceptions of the types in ``ignore`` count as "not yet" (a database whose tables do not exist yet).
    """
    what = message or getattr(probe, "__qualname__", None) or repr(probe)
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
        except ignore as error:
            value, last = None, error
        else:
            last = value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


def workflow(text: str, workflows_dir: Path | None = None, name: str | None = None) -> LoadedWorkflow:
    """Load workflow text (also writing it into ``workflows_dir`` when given)."""
    loaded = load_text(text, f"{name or 'test'}.yaml")
    if workflows_dir is not None:
        (workflows_dir / f"{name or loaded.spec.name}.yaml").write_text(text)
    return loaded


async def finished(runtime: Runtime, run_id: str, timeout: float = 20.0) -> Any:
    """Wait (polling the stored row) until the run has finished; return its row."""

    async def done() -> Any:
        row = await runtime.store.run_row(run_id)
        return (
            row
            if row is not None and row.status in ("succeeded", "failed", "cancelled", "compensated")
            else None
        )

    return await eventually(done, timeout, f"run {run_id} to finish")


async def status_is(runtime: Runtime, run_id: str, status: str, timeout: float = 20.0) -> Any:
    """Wait until the run's stored status is ``status``."""

    async def reached() -> Any:
        row = await runtime.store.run_row(run_id)
        return row if row is not None and row.status == status else None

    return await eventually(reached, timeout, f"run {run_id} to be {status}")


async def event_types(runtime: Runtime, run_id: str) -> list[tuple[str, str | None]]:
    """The run's stored timeline as (type, step key) pairs."""
    return [(e.type, e.step_key) for e in await runtime.store.events_after(run_id, 0, limit=100_000)]


async def outbox_settled(engine: AsyncEngine) -> bool:
    """True once the outbox has nothing left to send: every post sent (or failed for good), every card sent
    at its newest version. The positive signal before checking that nothing more arrives."""
    async with engine.connect() as conn:
        posts = (await conn.execute(sa.select(chat_posts.c.status))).scalars().all()
        cards = (await conn.execute(sa.select(chat_cards.c.version, chat_cards.c.sent_version))).all()
    return all(s in ("sent", "failed") for s in posts) and all(c.sent_version >= c.version for c in cards)
