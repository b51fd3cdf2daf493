"""The bell between processes on PostgreSQL: LISTEN/NOTIFY on a dedicated connection, two topics.

Timers: the transaction that stores a timer notifies its due time (``notify``). Work: the transaction
that makes a run claimable (stored unclaimed, mail for it, a lease given back, an exclusion group freed)
notifies its id (``notify_work``), so an idle process with capacity claims it, and the process driving
it reads its mail. PostgreSQL delivers a notification at commit, and only then: a process that dies just
after committing has still told the others. An alarm that hears of an earlier timer looks at the table
again. The channels are named after the schema, so several Switchboards sharing one database (or tests,
each in its own schema) do not wake each other. Nothing depends on a notification arriving: the tables
stay the truth, and a lost connection is reopened with everyone told to look again. Runner jobs: a
third topic, for jobs queued or ended (``job_bell.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.job_bell import PREFIX as JOBS_PREFIX

log = logging.getLogger(__name__)

PREFIX = "switchboard_timers_"
WORK_PREFIX = "switchboard_work_"
WORK_IDS = 50  # run ids named in one work notification; more, and it says only "look" (an empty list)
RECONNECT_AFTER = 1.0
_NOTIFY = sa.text("SELECT pg_notify(left(:prefix || current_schema(), 63), :due)")


async def notify(conn: AsyncConnection, due_at: float, sender: str = "") -> None:
    """In ``conn``'s transaction, tell every process (at commit) that a timer due at ``due_at`` was stored.

    ``sender`` (a process id) lets that process's own bell skip it: its alarm was told directly.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY, {"prefix": PREFIX, "due": f"{due_at!r} {sender}".strip()})


async def notify_work(conn: AsyncConnection, run_ids: list[str]) -> None:
    """In ``conn``'s transaction, tell every process (at commit) that these runs may be claimed or have mail
    (an empty list: look at the table)."""
    if conn.dialect.name == "postgresql":
        ids = " ".join(dict.fromkeys(run_ids)) if len(run_ids) <= WORK_IDS else ""
        await conn.execute(_NOTIFY, {"prefix": WORK_PREFIX, "due": ids})


class TimerBell:
    """Calls ``heard(due_at)`` when a process stores a timer, and ``work(run_ids)`` when runs become
    claimable or get mail (both with None after a reconnect: anything may have been missed)."""

    def __init__(
        self,
        engine: AsyncEngine,
        heard: Callable[[float | None], None],
        owner: str = "",
        work: Callable[[list[str] | None], None] | None = None,
        jobs: Callable[[str | None], None] | None = None,
    ) -> None:
        self.engine = engine
        self.heard = heard
        self.work = work
        self.jobs = jobs
        self.jobs_channel = ""
        self.owner = owner
        self.channel = ""
        self.work_channel = ""
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        due, _, sender = payload.partition(" ")
        if sender and sender == self.owner:
            return  # this process's own timer: its alarm was told directly
        try:
            self.heard(float(due))
        except ValueError:
            log.warning("timer bell: ignoring a notification it cannot read: %r", payload[:100])

    def _on_work(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self.work is not None:
            self.work(payload.split())

    def _on_jobs(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        what, _, sender = payload.partition(" ")
        if self.jobs is not None and not (sender and sender == self.owner):  # its own: rung directly
            self.jobs(what)

    @property
    def listening(self) -> bool:
        """Whether notifications arrive now (else the caller polls)."""
        return self._listening.is_set()

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
            self.work_channel = f"{WORK_PREFIX}{schema}"[:63]
            self.jobs_channel = f"{JOBS_PREFIX}{schema}"[:63]
            raw = await sa_conn.get_raw_connection()
            pg: Any = raw.driver_connection
            lost = asyncio.Event()

            def closed(_conn: Any) -> None:
                lost.set()

            pg.add_termination_listener(closed)
            await pg.add_listener(self.channel, self._on_notify)
            if self.work is not None:
                await pg.add_listener(self.work_channel, self._on_work)
            if self.jobs is not None:
                await pg.add_listener(self.jobs_channel, self._on_jobs)
            self._listening.set()
            self.heard(None)  # (re)connected: whatever was told meanwhile, look again
            if self.work is not None:
                self.work(None)
            if self.jobs is not None:
                self.jobs(None)
            try:
                await lost.wait()
            finally:
                pg.remove_termination_listener(closed)
                if not lost.is_set():
                    await pg.remove_listener(self.channel, self._on_notify)
                    if self.work is not None:
                        await pg.remove_listener(self.work_channel, self._on_work)
                    if self.jobs is not None:
                        await pg.remove_listener(self.jobs_channel, self._on_jobs)
            await sa_conn.invalidate()  # a dead connection must not go back to the pool for others
            raise ConnectionError("the database closed the connection")
