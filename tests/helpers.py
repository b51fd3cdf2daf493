"""Helpers for tests that run workflows: load text, and wait on stored state by polling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.runtime.runtime import Runtime
from engine.loader import LoadedWorkflow, load_text


def workflow(text: str, workflows_dir: Path | None = None, name: str | None = None) -> LoadedWorkflow:
    """Load workflow text (also writing it into ``workflows_dir`` when given)."""
    loaded = load_text(text, f"{name or 'test'}.yaml")
    if workflows_dir is not None:
        (workflows_dir / f"{name or loaded.spec.name}.yaml").write_text(text)
    return loaded


async def finished(runtime: Runtime, run_id: str, timeout: float = 20.0) -> Any:
    """Wait (polling the stored row) until the run has finished; return its row."""
    async with asyncio.timeout(timeout):
        while True:
            row = await runtime.store.run_row(run_id)
            if row is not None and row.status in ("succeeded", "failed", "cancelled", "compensated"):
                return row
            await asyncio.sleep(0.02)


async def status_is(runtime: Runtime, run_id: str, status: str, timeout: float = 20.0) -> Any:
    """Wait until the run's stored status is ``status``."""
    async with asyncio.timeout(timeout):
        while True:
            row = await runtime.store.run_row(run_id)
            if row is not None and row.status == status:
                return row
            await asyncio.sleep(0.02)


async def event_types(runtime: Runtime, run_id: str) -> list[tuple[str, str | None]]:
    """The run's stored timeline as (type, step key) pairs."""
    return [(e.type, e.step_key) for e in await runtime.store.events_after(run_id, 0, limit=100_000)]
