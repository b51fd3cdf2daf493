"""Group commit: writes from every run that arrive together share one transaction.

SQLAlchemy async on SQLite costs about 0.6 ms per commit no matter how little it writes, so a wave
of steps finishing together is stored with one commit instead of one each. Durability is unchanged:
a writer's ``await write(...)`` returns only after its rows are committed.

A batch names the runs whose lease the writing process must hold (``Batch.held``): the commit checks
them in its own transaction, locking their rows, and fails with ``LeaseLost`` when another process (or
nobody) holds one, writing nothing. So a process can never store, nor then act on, a decision for a
run it no longer owns, however late it learns that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from bot.storage import sqlite_commit
from bot.storage.database import create_sync_writer
from bot.storage.tables import runs
from bot.storage.timer_bell import notify, notify_work

log = logging.getLogger(__name__)
LOCKED_RETRIES = 5


@dataclass
class Batch:
    """Statements to run in order; each with one parameter set or a list of them (executemany)."""

    ops: list[tuple[Executable, Any]] = field(default_factory=list)
    earliest_timer: float | None = None  # the soonest timer among the rows: the alarm is told after commit
    work: list[str] = field(default_factory=list)  # runs it makes claimable: other processes told at commit
    held: list[str] = field(default_factory=list)  # runs whose lease the writer must hold at commit

    def add_timer(self, stmt: Executable, row: dict[str, Any]) -> None:
        """Queue a timer row, noting its due time."""
        due = float(row["due_at"])
        self.earliest_timer = due if self.earliest_timer is None else min(self.earliest_timer, due)
        self.add(stmt, row)

    def add(self, stmt: Executable, params: Any = None) -> None:
        """Queue ``stmt`` with a dict, a list of dicts, or nothing."""
        if isinstance(params, list) and not params:
            return
        self.ops.append((stmt, params))

    def __bool__(self) -> bool:
        return bool(self.ops or self.held)


class LeaseLost(Exception):
    """The writing process no longer holds the lease of these runs: nothing of the commit was stored."""

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(f"the lease of run(s) {', '.join(run_ids)} is no longer held here")
        self.run_ids = run_ids


def _lease_check(held: list[str], owner: str) -> sa.Select[Any]:
    query = sa.select(runs.c.id).where(runs.c.id.in_(held), runs.c.lease_owner == owner).order_by(runs.c.id)
    return query.with_for_update(of=runs)  # SQLite: ignored, BEGIN IMMEDIATE already holds the write lock


def _missing(held: list[str], found: Sequence[Any]) -> None:
    lost = sorted(set(held) - set(found))
    if lost:
        raise LeaseLost(lost)


class Journal:
    """A single writer task that commits every queued batch together."""

    def __init__(self, engine: AsyncEngine, max_batches: int = 512, sqlite3: bool = True) -> None:
        """``sqlite3=False``: SQLite is committed through SQLAlchemy only (sqlite_commit's reference)."""
        self.engine = engine
        self._writer = create_sync_writer(engine)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="journal") if self._writer else None
        self._sync_conn: sa.Connection | None = None
        self._plans = sqlite_commit.Plans(self._writer.dialect) if self._writer and sqlite3 else None
        self._inline: Any = None  # a sqlite3 handle that never waits for the write lock (see _commit_inline)
        self.inline_busy = 0  # inline commits that found the write lock taken and went to the thread
        self.unfit = (
            0  # SQLite commits that had to go through SQLAlchemy (a statement sqlite_commit cannot bind)
        )
        self.max_batches = max_batches
        self._pending: list[tuple[Batch, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self.commits = 0
        self.owner = ""  # the process writing, named in its timers' notifications (see timer_bell.notify)

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="journal")

    async def close(self) -> None:
        """Let queued writes commit, then stop."""
        while self._pending:
            await asyncio.sleep(0.001)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self._close_inline()
        if self._thread is not None and self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sync)

    async def write(self, batch: Batch) -> None:
        """Commit ``batch`` (together with whatever else is queued); raises if the commit failed."""
        if not batch:
            return
        if self._task is None:
            await self._commit([batch])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        self._wake.set()
        await future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                taken = self._pending[: self.max_batches]
                del self._pending[: len(taken)]
                try:
                    await self._commit([b for b, _ in taken])
                except Exception as exc:  # one bad batch must not fail the others
                    if len(taken) > 1:
                        await self._one_by_one(taken)
                        continue
                    _failed(exc)
                    _settle(taken, exc)
                else:
                    _settle(taken, None)

    async def _one_by_one(self, taken: Sequence[tuple[Batch, asyncio.Future[None]]]) -> None:
        for batch, future in taken:
            try:
                await self._commit([batch])
            except Exception as exc:
                _failed(exc)
                _settle([(batch, future)], exc)
            else:
                _settle([(batch, future)], None)

    async def _commit(self, batches: Sequence[Batch]) -> None:
        merged = _merge(batches)
        soonest = min((b.earliest_timer for b in batches if b.earliest_timer is not None), default=None)
        work = [run_id for b in batches for run_id in b.work]
        held = [run_id for b in batches for run_id in b.held]
        if self._task is None:  # not started: a one-off write on a pooled connection
            async with self.engine.begin() as conn:
                if held:
                    _missing(held, (await conn.execute(_lease_check(held, self.owner))).scalars().all())
                for stmt, params in merged:
                    await conn.execute(stmt, params)
                if soonest is not None:
                    await notify(conn, soonest, self.owner)
                if work:
                    await notify_work(conn, work)
            return
        if self._thread is not None:
            if not self._commit_inline(merged, held):
                await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._commit_sync, merged, held
                )
            self.commits += 1
            return
        # The writer keeps one connection: a pool checkout and its reset cost more than a small commit.
        # That connection skips the pool's pre-ping, so when the server dropped it (a restart, an idle
        # timeout) the batch's first statement fails having written nothing: then it runs once more on
        # a fresh connection. A failure after the first statement is never retried (it may have committed).
        for fresh in (self._conn is None, True):
            if self._conn is None:
                self._conn = await self.engine.connect()
            conn, started = self._conn, False
            try:
                async with conn.begin():
                    if held:
                        found = (await conn.execute(_lease_check(held, self.owner))).scalars().all()
                        started = True
                        _missing(held, found)
                    for stmt, params in merged:
                        await conn.execute(stmt, params)
                        started = True
                    if soonest is not None:  # the other processes' alarms hear of it at commit
                        await notify(conn, soonest, self.owner)
                    if work:
                        await notify_work(conn, work)
            except LeaseLost:
                raise  # rolled back, nothing written; the connection is fine
            except Exception as exc:
                await conn.close()
                self._conn = None
                dropped = isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
                if fresh or started or not dropped:
                    raise
                log.warning("the database dropped the journal's connection; writing on a new one")
                continue
            self.commits += 1
            return

    def _commit_sync(self, merged: list[tuple[Executable, Any]], held: list[str]) -> None:
        # BEGIN IMMEDIATE takes the write lock first (waiting busy_timeout for it), so no statement of
        # the batch can fail half-way for want of it; a lock still held after that is retried a few
        # times before the error reaches anyone (another process writing the same file: a CLI client).
        for attempt in range(1, LOCKED_RETRIES + 1):
            try:
                self._commit_once(merged, held)
                return
            except sa.exc.OperationalError as exc:
                if not _locked(exc) or attempt == LOCKED_RETRIES:
                    raise
                log.warning("the SQLite file is locked by another process; retrying (%d)", attempt)
                time.sleep(0.05 * attempt)

    def _commit_once(self, merged: list[tuple[Executable, Any]], held: list[str]) -> None:
        assert self._writer is not None
        if self._sync_conn is None:
            self._sync_conn = self._writer.connect().execution_options(sqlite_begin="IMMEDIATE")
        conn = self._sync_conn
        try:
            if self._plans is not None and self._sqlite3(conn, merged, held):
                return
            with conn.begin():
                if held:
                    _missing(held, conn.execute(_lease_check(held, self.owner)).scalars().all())
                for stmt, params in merged:
                    conn.execute(stmt, params)
        except LeaseLost:
            raise  # rolled back; the connection is fine
        except Exception:
            self._close_sync()
            raise

    def _commit_inline(self, merged: list[tuple[Executable, Any]], held: list[str]) -> bool:
        """Commit on the event loop's own thread, if the write lock is free this instant.

        Handing a commit to the writer thread and back costs more than the commit itself (about
        0.1 ms with sqlite3 and WAL). This handle's busy timeout is 0: when another connection holds
        the write lock (a CLI client, an aiosqlite write of this process that waits on this loop), it
        fails at once having written nothing, and the writer thread, which may wait, commits instead.
        """
        if self._plans is None:
            return False
        if self._inline is None:
            assert self._writer is not None
            self._inline = self._writer.raw_connection()
            self._inline.driver_connection.execute("PRAGMA busy_timeout=0")
        raw = self._inline.driver_connection
        try:
            lost = sqlite_commit.commit(raw, self._plans, merged, (held, self.owner) if held else None)
        except sqlite_commit.Unfit:
            return False
        except sa.exc.OperationalError as exc:
            if not _locked(exc):
                self._close_inline()
                raise
            self.inline_busy += 1
            return False
        except Exception:
            self._close_inline()
            raise
        if lost:
            raise LeaseLost(lost)
        return True

    def _close_inline(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def _sqlite3(self, conn: sa.Connection, merged: list[tuple[Executable, Any]], held: list[str]) -> bool:
        """Commit on the connection's own sqlite3 handle; False (nothing written) when SQLAlchemy must."""
        assert self._plans is not None
        raw: Any = conn.connection.driver_connection
        try:
            lost = sqlite_commit.commit(raw, self._plans, merged, (held, self.owner) if held else None)
        except sqlite_commit.Unfit as why:
            self.unfit += 1
            log.debug("journal commit through SQLAlchemy: %s", why)
            return False
        if lost:
            raise LeaseLost(lost)
        return True

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None


def _failed(exc: Exception) -> None:
    if isinstance(exc, LeaseLost):
        log.warning("journal commit refused: %s", exc)  # the run's driver stops; nothing was written
    elif isinstance(exc, sa.exc.IntegrityError):
        # A row already there (a dedupe mark, a console post sent before): its writer decides.
        log.info("journal commit refused by a constraint: %s", exc.orig)
    else:
        log.exception("journal commit failed")


def _locked(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def _merge(batches: Sequence[Batch]) -> list[tuple[Executable, Any]]:
    """Fold every use of the same statement into one executemany, in order of first appearance.

    Safe because a run never has two batches in one commit (each run awaits its previous write),
    so batches from different runs touch different rows.
    """
    if len(batches) == 1:
        return batches[0].ops
    order: dict[int, tuple[Executable, list[Any]]] = {}
    singles: list[tuple[Executable, Any]] = []
    for batch in batches:
        for stmt, params in batch.ops:
            if params is None:
                singles.append((stmt, None))
                continue
            slot = order.setdefault(id(stmt), (stmt, []))
            slot[1].extend(params if isinstance(params, list) else [params])
    return [*singles, *order.values()]


def _settle(taken: Sequence[tuple[Batch, asyncio.Future[None]]], exc: BaseException | None) -> None:
    for _, future in taken:
        if not future.done():
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)
