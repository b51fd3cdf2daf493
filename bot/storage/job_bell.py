"""Wake-ups for runner jobs: a job was queued (a runner's long-poll looks), or one ended (its run looks).

In this process each is a ``Chime``: whoever waits holds an event it sets, so nothing polls. Between
processes on PostgreSQL the transaction that queues or ends a job also notifies (``notify_jobs``), and the
timer bell's connection hears it (``bot/storage/timer_bell.py``) and rings the chime here. The channel is
named after the schema, like the bell's others. SQLite serves one process, so the in-process chime is all
it needs. The tables stay the truth: a lost notification costs a slow look (``FALLBACK``), never a job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PREFIX = "switchboard_jobs_"
QUEUED, ENDED = "queued", "ended"
FALLBACK = 1.0  # seconds: the longest anyone waits without looking at the table, should a wake-up be lost
_NOTIFY = sa.text("SELECT pg_notify(left(:prefix || current_schema(), 63), :what)")


class Chime:
    """Sets every event listening to it; ``listen()`` gives a waiter its own event for as long as it waits."""

    def __init__(self) -> None:
        self._events: set[asyncio.Event] = set()
        self.rung = 0  # how often it rang (for tests and the bench)

    def ring(self) -> None:
        self.rung += 1
        for event in self._events:
            event.set()

    @contextmanager
    def listen(self, event: asyncio.Event | None = None) -> Iterator[asyncio.Event]:
        """Set ``event`` (a new one by default) whenever the chime rings, until the block ends."""
        event = event or asyncio.Event()
        self._events.add(event)
        try:
            yield event
        finally:
            self._events.discard(event)


class JobBell:
    """The two chimes of one database in this process: jobs queued, jobs ended."""

    def __init__(self) -> None:
        self.queued = Chime()
        self.ended = Chime()

    def heard(self, what: str | None) -> None:
        """Another process said ``what`` (PostgreSQL), or anything may have been missed (None)."""
        if what != ENDED:
            self.queued.ring()
        if what != QUEUED:
            self.ended.ring()


# One bell per database in this process: the API's long-polls and the runs' watchers of one database meet
# here whichever runtime object serves them.
_BELLS: dict[str, JobBell] = {}


def bell_for(engine: AsyncEngine) -> JobBell:
    """This process's bell for ``engine``'s database."""
    return _BELLS.setdefault(engine.url.render_as_string(hide_password=False), JobBell())


def notice(what: str, sender: str) -> sa.TextClause:
    """The statement that notifies ``what`` (queued or ended) from process ``sender`` at commit, with its
    values bound (no parameters: a batch of the journal runs it as it is)."""
    return _NOTIFY.bindparams(prefix=PREFIX, what=f"{what} {sender}".strip())


async def notify_jobs(conn: AsyncConnection, what: str, sender: str) -> None:
    """In ``conn``'s transaction, tell the other processes (at commit) that jobs were queued or ended."""
    if conn.dialect.name == "postgresql":
        await conn.execute(notice(what, sender))
