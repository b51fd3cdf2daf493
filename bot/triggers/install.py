"""Wiring the triggers into a bot process: the webhook routes and the scheduler, in one call."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.triggers.hooks import Hooks
from bot.triggers.schedules import Scheduler


@dataclass
class Triggers:
    """What starts runs besides people, in one process."""

    hooks: Hooks
    scheduler: Scheduler


async def install_triggers(app: web.Application, runtime: Runtime, catalog: Catalog) -> Triggers:
    """Add ``POST /hooks/NAME`` to ``app`` and start firing the workflows' schedules (after runtime.start)."""
    hooks = Hooks(runtime, catalog)
    hooks.attach(app)
    scheduler = Scheduler(runtime, catalog)
    await scheduler.start()
    return Triggers(hooks, scheduler)
