"""Remote step jobs: queued with the commit that starts a ``runs_on`` step, leased to one runner, ended once.

A job is one attempt of one step. It moves ``queued`` → ``leased`` (one runner took it; the lease is
renewed by that runner's heartbeats) → ``done`` (the runner reported), or → ``lost`` (the lease lapsed:
the step follows its ``on_interrupt``) or ``cancelled``. Every move is a compare-and-set on the status,
so two runners never hold one job and a result reported after the lease was lost is refused. A job that
ends here rings the bell of its database (``job_bell.py``), so the run waiting for it looks at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import job_bell
from bot.storage.job_bell import ENDED, bell_for, notice, notify_jobs
from bot.storage.runs import _dialect_insert as dialect_insert
from bot.storage.tables import runner_jobs as table

QUEUED, LEASED, DONE, LOST, CANCELLED = "queued", "leased", "done", "lost", "cancelled"
OPEN = (QUEUED, LEASED)
OUTPUT_KEPT = 64 * 1024  # characters of streamed output kept per job (the tail)
CLAIM_SCAN = 200  # queued jobs looked at per claim, oldest first
QUEUED_KEPT = 1000  # rows queued here kept for their step's wait (one whose commit failed is dropped later)
_RESET = (
    "kind",
    "labels",
    "params",
    "idempotency_key",
    "secret_nonce",
    "timeout",
    "status",
    "runner_id",
    "runner_name",
    "lease_until",
    "cancel_requested",
    "outcome",
    "consumed",
    "output",
    "created_at",
    "taken_at",
    "finished_at",
)


@dataclass(frozen=True)
class Job:
    """One job row."""

    id: str
    run_id: str
    step: str
    attempt: int
    compensation: bool
    kind: str
    labels: tuple[str, ...]
    params: dict[str, Any] | None
    idempotency_key: str
    secret_nonce: str
    timeout: float | None
    status: str
    runner_id: str | None
    runner_name: str | None
    lease_until: float | None
    cancel_requested: bool
    outcome: dict[str, Any] | None
    consumed: bool
    output: str | None
    created_at: float
    taken_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class _Row:
    """A row as written, shaped as one read back (``_mapping``)."""

    _mapping: dict[str, Any]


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["labels"] = tuple(data["labels"])
    return Job(**data)


def _fitting(rows: Sequence[Any], labels: frozenset[str], room: int) -> list[str]:
    """Of the queued jobs looked at (id, labels, jobs the runner holds), those a runner with ``labels``
    may take, oldest first; none when it has no room."""
    if not rows or int(rows[0][2] or 0) >= room:
        return []
    return [job_id for job_id, wanted, _ in rows if set(wanted) <= labels]


class RunnerJobs:
    """The ``runner_jobs`` table."""

    def __init__(self, engine: AsyncEngine, owner: str = "") -> None:
        self.engine = engine
        self.owner = owner  # this process (its own notifications are not heard back)
        self.bell = bell_for(engine)
        # Jobs this process queued, until the step's wait takes them: it need not read back what it wrote.
        self._queued_here: dict[tuple[str, str, int], tuple[Job, int]] = {}
        # An upsert: a compensation retried with the same attempt number queues over its last job.
        up = dialect_insert(engine.dialect.name)(table)
        self.insert = up.on_conflict_do_update(
            index_elements=[table.c.run_id, table.c.step, table.c.attempt, table.c.compensation],
            set_={name: up.excluded[name] for name in _RESET},
        )

    def queued_notice(self) -> sa.TextClause | None:
        """What a batch that queues jobs adds so other processes' long-polls hear of them (PostgreSQL)."""
        return notice(job_bell.QUEUED, self.owner) if self.engine.dialect.name == "postgresql" else None

    @staticmethod
    def row(
        run_id: str,
        step: str,
        attempt: int,
        compensation: bool,
        kind: str,
        labels: tuple[str, ...],
        params: dict[str, Any],
        timeout: float | None,
        now: float,
    ) -> dict[str, Any]:
        """The row that queues one attempt (added to the batch that stores the step's start)."""
        return {
            "id": secrets.token_hex(12),
            "run_id": run_id,
            "step": step,
            "attempt": attempt,
            "compensation": compensation,
            "kind": kind,
            "labels": sorted(labels),
            "params": params,
            "idempotency_key": f"{run_id}:{step}" + (":compensate" if compensation else ""),
            "secret_nonce": "",
            "timeout": timeout,
            "status": QUEUED,
            "runner_id": None,
            "runner_name": None,
            "lease_until": None,
            "cancel_requested": False,
            "outcome": None,
            "consumed": False,
            "output": None,
            "created_at": now,
            "taken_at": None,
            "finished_at": None,
        }

    def queued_here(self, row: dict[str, Any]) -> None:
        """Remember a job row added to a batch here, for ``take_queued`` once the batch committed.

        Not a compensation's: its row may be stored over an earlier one, which keeps that one's id.
        """
        if row["compensation"]:
            return
        if len(self._queued_here) >= QUEUED_KEPT:
            self._queued_here.pop(next(iter(self._queued_here)))
        key = (row["run_id"], row["step"], row["attempt"])
        self._queued_here[key] = (_job(_Row(row)), self.bell.ended.rung)

    def take_queued(self, run_id: str, step: str, attempt: int) -> tuple[Job, int] | None:
        """The row this process queued for an attempt, as written, with the ended bell's count then (it
        cannot have ended before): its step's wait need not read back what was just written."""
        return self._queued_here.pop((run_id, step, attempt), None)

    async def find(self, run_id: str, step: str, attempt: int, compensation: bool) -> Job | None:
        """The job of one attempt."""
        query = sa.select(table).where(
            table.c.run_id == run_id,
            table.c.step == step,
            table.c.attempt == attempt,
            table.c.compensation == compensation,
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _job(row) if row else None

    async def get(self, job_id: str) -> Job | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.id == job_id))).first()
        return _job(row) if row else None

    async def get_many(self, job_ids: list[str]) -> list[Job]:
        if not job_ids:
            return []
        async with self.engine.connect() as conn:
            return [_job(r) for r in await conn.execute(sa.select(table).where(table.c.id.in_(job_ids)))]

    async def for_run(self, run_id: str) -> list[Job]:
        """Every job of a run, oldest first."""
        query = sa.select(table).where(table.c.run_id == run_id).order_by(table.c.created_at)
        async with self.engine.connect() as conn:
            return [_job(r) for r in await conn.execute(query)]

    async def claim(
        self, runner_id: str, name: str, labels: frozenset[str], room: int, now: float, lease: float
    ) -> Job | None:
        """Lease the oldest queued job whose labels the runner has all of, if it has room for one more.

        PostgreSQL: one transaction on one connection, since every round trip is on the path from a job
        queued to its runner starting it. SQLite: a plain read first, so an idle look takes no write
        lock; then the read and the write again under the write lock (a transaction that reads before
        it writes must take it first, or it fails when another commit came in between).
        """
        held = (
            sa.select(sa.func.count())
            .select_from(leased := table.alias("held"))
            .where(leased.c.runner_id == runner_id, leased.c.status == LEASED)
            .scalar_subquery()
        )
        looked = (
            sa.select(table.c.id, table.c.labels, held)
            .where(table.c.status == QUEUED, table.c.cancel_requested.is_(False))
            .order_by(table.c.created_at)
            .limit(CLAIM_SCAN)
        )
        sqlite = self.engine.dialect.name != "postgresql"
        if sqlite:
            async with self.engine.connect() as conn:
                if not _fitting((await conn.execute(looked)).all(), labels, room):
                    return None
        async with self.engine.connect() as conn:
            if sqlite:
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                for job_id in _fitting((await conn.execute(looked)).all(), labels, room):
                    taken = await conn.execute(
                        table.update()
                        .where(table.c.id == job_id, table.c.status == QUEUED)
                        .values(status=LEASED, runner_id=runner_id, runner_name=name)
                        .values(lease_until=now + lease, taken_at=now)
                        .returning(*table.c)
                    )
                    row = taken.first()
                    if row is not None:
                        return _job(row)
        return None

    async def renew(
        self, runner_id: str, job_ids: list[str], now: float, lease: float, sweep: bool = True
    ) -> list[Job]:
        """Extend the leases the runner still holds; return every job it named, as it stands now."""
        async with self.engine.begin() as conn:
            swept = 0
            if sweep:
                swept = (
                    await conn.execute(  # leases no live run process watches lapse here (a long-gone runner)
                        table.update()
                        .where(table.c.status == LEASED, table.c.lease_until < now - 4 * lease)
                        .values(status=LOST, params=None, finished_at=now)
                    )
                ).rowcount
                if swept:
                    await notify_jobs(conn, ENDED, self.owner)
            found: list[Job] = []
            if job_ids:
                await conn.execute(
                    table.update()
                    .where(table.c.id.in_(job_ids), table.c.runner_id == runner_id, table.c.status == LEASED)
                    .values(lease_until=now + lease)
                )
                found = [_job(r) for r in await conn.execute(sa.select(table).where(table.c.id.in_(job_ids)))]
        if swept:
            self.bell.ended.ring()
        return found

    async def finish(self, job_id: str, runner_id: str, outcome: dict[str, Any], now: float) -> bool:
        """Store the runner's result, only while it still holds the lease; the params are erased."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                table.update()
                .where(table.c.id == job_id, table.c.runner_id == runner_id, table.c.status == LEASED)
                .values(status=DONE, outcome=outcome, params=None, finished_at=now)
            )
            if done.rowcount == 1:
                await notify_jobs(conn, ENDED, self.owner)
        return self._ended(done.rowcount == 1)

    async def hand_back(self, job_id: str, runner_id: str, now: float) -> bool:
        """A stopping runner gives a job up: it is lost at once, as a lapsed lease would make it."""
        async with self.engine.begin() as conn:
            lost = await conn.execute(
                table.update()
                .where(table.c.id == job_id, table.c.runner_id == runner_id, table.c.status == LEASED)
                .values(status=LOST, params=None, finished_at=now)
            )
            if lost.rowcount == 1:
                await notify_jobs(conn, ENDED, self.owner)
        return self._ended(lost.rowcount == 1)

    def _ended(self, ended: bool) -> bool:
        if ended:  # committed: the run waiting in this process looks now
            self.bell.ended.ring()
        return ended

    async def append_output(self, job_id: str, runner_id: str, text: str) -> bool:
        """Add streamed lines to the job's kept tail (bounded), while the runner holds the job."""
        async with self.engine.begin() as conn:
            current = await conn.execute(
                sa.select(table.c.output).where(
                    table.c.id == job_id, table.c.runner_id == runner_id, table.c.status == LEASED
                )
            )
            found = current.first()
            if found is None:
                return False
            kept = ((found[0] or "") + text)[-OUTPUT_KEPT:]
            await conn.execute(table.update().where(table.c.id == job_id).values(output=kept))
        return True

    async def lapse(self, job_id: str, now: float) -> bool:
        """Mark a leased job lost when its lease has run out (only once, by whoever sees it first)."""
        async with self.engine.begin() as conn:
            lost = await conn.execute(
                table.update()
                .where(table.c.id == job_id, table.c.status == LEASED, table.c.lease_until < now)
                .values(status=LOST, params=None, finished_at=now)
            )
        return lost.rowcount == 1

    async def cancel(self, job_id: str, now: float) -> None:
        """Ask for the job to stop: a queued one is cancelled at once, a leased one's runner is told."""
        async with self.engine.begin() as conn:
            await conn.execute(
                table.update()
                .where(table.c.id == job_id, table.c.status == QUEUED)
                .values(status=CANCELLED, params=None, finished_at=now, cancel_requested=True)
            )
            await conn.execute(
                table.update()
                .where(table.c.id == job_id, table.c.status == LEASED)
                .values(cancel_requested=True)
            )

    async def consume(self, job_id: str) -> None:
        """Note that the run has taken the outcome in."""
        async with self.engine.begin() as conn:
            await conn.execute(table.update().where(table.c.id == job_id).values(consumed=True))

    async def leased(self) -> list[Job]:
        """Every job a runner holds now, oldest lease first (without its parameters)."""
        query = (
            sa.select(*(c for c in table.c if c.name != "params"), sa.null().label("params"))
            .where(table.c.status == LEASED)
            .order_by(table.c.taken_at)
        )
        async with self.engine.connect() as conn:
            return [_job(r) for r in await conn.execute(query)]

    async def counts(self) -> dict[str, int]:
        """Jobs by status, for metrics and ``runners list``."""
        query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
        async with self.engine.connect() as conn:
            return {str(status): int(n) for status, n in await conn.execute(query)}
