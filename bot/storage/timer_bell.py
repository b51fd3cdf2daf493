"""The timer bell between processes on PostgreSQL: LISTEN/NOTIFY on a dedicated connection.

A process that stores a timer rings the bell with its due time; every other process's alarm hears it and
looks at the table again if that is earlier than its own next wake-up. The channel is named after the
schema, so several Switchboards sharing one database (or tests, each in its own schema) do not wake each
other. Nothing depends on a notification arriving: the table stays the truth, and a lost connection is
reopened with every alarm told to look again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

PREFIX = "switchboard_timers_"
RECONNECT_AFTER = 1.0


class TimerBell:
    """Tells other processes of new timers, and calls ``heard(due_at)`` when they tell of theirs
    (``heard(None)`` after a reconnect: anything may have been missed)."""

    def __init__(self, engine: AsyncEngine, heard: Callable[[float | None], None]) -> None:
        self.engine = engine
        self.heard = heard
        self.channel = ""
        self._outgoing: float | None = None
        self._signal = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pid: int | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and listen; return once listening (or after ``timeout``, trying on in the background)."""
        self._task = asyncio.create_task(self._run(), name="timer-bell")
        try:
            async with asyncio.timeout(timeout):
                await self._listening.wait()
        except TimeoutError:
            log.warning(
                "timer bell: not listening yet; other processes' timers wake this one late till it is"
            )

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def ring(self, due_at: float) -> None:
        """Tell the other processes that a timer due at ``due_at`` was stored (sent soon, coalesced)."""
        self._outgoing = due_at if self._outgoing is None else min(self._outgoing, due_at)
        self._signal.set()

    def _on_notify(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == self._pid:
            return  # our own ring: this process's alarm already knows
        try:
            due = float(payload)
        except ValueError:
            return
        self.heard(due)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("timer bell: connection lost (%s); reconnecting", exc)
            self._listening.clear()
            await asyncio.sleep(RECONNECT_AFTER)

    async def _listen(self) -> None:
        async with self.engine.connect() as sa_conn:
            schema = (await sa_conn.execute(sa.text("SELECT current_schema()"))).scalar_one()
            await sa_conn.rollback()  # hold no transaction open on the bell's connection
            self.channel = f"{PREFIX}{schema}"[:63]
            raw = await sa_conn.get_raw_connection()
            pg: Any = raw.driver_connection
            lost = asyncio.Event()

            def closed(_conn: Any) -> None:
                lost.set()
                self._signal.set()

            pg.add_termination_listener(closed)
            await pg.add_listener(self.channel, self._on_notify)
            self._pid = pg.get_server_pid()
            self._listening.set()
            self.heard(None)  # (re)connected: whatever was told meanwhile, look again
            try:
                while not lost.is_set():
                    await self._signal.wait()
                    self._signal.clear()
                    due, self._outgoing = self._outgoing, None
                    if due is not None and not lost.is_set():
                        await pg.execute("SELECT pg_notify($1, $2)", self.channel, repr(due))
            finally:
                pg.remove_termination_listener(closed)
                if not lost.is_set():
                    await pg.remove_listener(self.channel, self._on_notify)
            raise ConnectionError("the database closed the connection")
