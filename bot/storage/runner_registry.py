"""Runners that registered: who they are (name, labels, version), how busy, and when last heard from."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import runners as table


@dataclass(frozen=True)
class RunnerRow:
    """One registered runner."""

    id: str
    name: str
    token_id: str
    labels: tuple[str, ...]
    version: str
    host: str
    concurrency: int
    busy: int
    registered_at: float
    last_seen: float

    def state(self, alive_since: float, busy: int | None = None) -> str:
        """``offline`` when not heard from since ``alive_since``, else ``busy N/M`` or ``idle`` (N: ``busy``,
        or the count its last heartbeat gave)."""
        if self.last_seen < alive_since:
            return "offline"
        busy = self.busy if busy is None else busy
        return f"busy {busy}/{self.concurrency}" if busy else "idle"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for ``runners list --json`` and the API."""
        return {**self.__dict__, "labels": list(self.labels)}


def _runner(row: Any) -> RunnerRow:
    data = dict(row._mapping)
    data["labels"] = tuple(data["labels"])
    return RunnerRow(**data)


class RunnerRegistry:
    """The ``runners`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def register(
        self,
        name: str,
        token_id: str,
        labels: frozenset[str],
        version: str,
        host: str,
        concurrency: int,
        now: float,
    ) -> RunnerRow:
        """A new registration (a runner process that restarts registers again)."""
        runner_id = secrets.token_hex(12)
        row = {
            "id": runner_id,
            "name": name,
            "token_id": token_id,
            "labels": sorted(labels),
            "version": version,
            "host": host,
            "concurrency": concurrency,
            "busy": 0,
            "registered_at": now,
            "last_seen": now,
        }
        async with self.engine.begin() as conn:
            await conn.execute(table.insert(), row)
        return RunnerRow(
            runner_id, name, token_id, tuple(sorted(labels)), version, host, concurrency, 0, now, now
        )

    async def get(self, runner_id: str) -> RunnerRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.id == runner_id))).first()
        return _runner(row) if row else None

    async def seen(self, runner_id: str, busy: int, now: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(table.update().where(table.c.id == runner_id).values(last_seen=now, busy=busy))

    async def touch(self, runner_id: str, now: float) -> None:
        """Heard from, with its busy count left as its last heartbeat said."""
        async with self.engine.begin() as conn:
            await conn.execute(table.update().where(table.c.id == runner_id).values(last_seen=now))

    async def list(self, since: float = 0.0) -> list[RunnerRow]:
        """Runners heard from since ``since``, most recent first."""
        query = sa.select(table).where(table.c.last_seen >= since).order_by(table.c.last_seen.desc())
        async with self.engine.connect() as conn:
            return [_runner(r) for r in await conn.execute(query)]

    async def any_with(self, labels: frozenset[str], since: float) -> bool:
        """Whether a runner with every one of ``labels`` was heard from since ``since``."""
        return any(labels <= set(r.labels) for r in await self.list(since))
