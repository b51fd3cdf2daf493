"""Approval rows: requests, votes, the audit trail and the compare-and-sets that settle a request.

Every function that takes ``conn`` runs inside the caller's transaction, so a decision, its audit record
and the run's signal commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.journal import Batch
from bot.storage.tables import action_log, approval_audit, approval_votes, approvals, inbox, runs, timers
from bot.storage.timer_bell import notify_work


@dataclass(frozen=True)
class Approval:
    """An approval request as stored."""

    id: str
    run_id: str
    step_key: str
    status: str
    title: str
    description: str | None
    context: dict[str, str]
    approvers: list[str]
    required: int
    allow_self_approval: bool
    requested_by: str
    created_at: float
    expires_at: float | None


def audit_row(
    approval_id: str, run_id: str, actor: str, action: str, detail: dict[str, Any], source: str, at: float
) -> dict[str, Any]:
    """The parameters of one ``approval_audit`` record."""
    return {
        "approval_id": approval_id,
        "run_id": run_id,
        "actor": actor,
        "action": action,
        "detail": detail,
        "source": source,
        "at": at,
    }


def add_request(
    batch: Batch, row: dict[str, Any], timer_rows: list[dict[str, Any]], audit: dict[str, Any]
) -> None:
    """Queue a new request, its timers and its first audit record in the run's batch."""
    batch.add(approvals.insert(), row)
    for timer in timer_rows:
        batch.add_timer(timers.insert(), timer)
    batch.add(approval_audit.insert(), audit)


async def pending(engine: AsyncEngine, run_id: str | None = None) -> list[Approval]:
    """Every request still waiting for a decision (of one run, when given), oldest first."""
    query = sa.select(approvals).where(approvals.c.status == "pending").order_by(approvals.c.created_at)
    if run_id is not None:
        query = query.where(approvals.c.run_id == run_id)
    async with engine.connect() as conn:
        return [_approval(r) for r in (await conn.execute(query)).all()]


async def latest_request(engine: AsyncEngine, run_id: str, step_key: str, below: int) -> str | None:
    """The id of the step's request with the highest request number under ``below``, or None."""
    query = (
        sa.select(approvals.c.id)
        .where(approvals.c.run_id == run_id, approvals.c.step_key == step_key, approvals.c.request < below)
        .order_by(approvals.c.request.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(query)).scalar_one_or_none()
    return str(found) if found is not None else None


async def by_prefix(engine: AsyncEngine, approval_id: str) -> list[Approval]:
    """The requests whose id starts with ``approval_id`` (at most two: enough to tell it is unique)."""
    query = sa.select(approvals).where(approvals.c.id.startswith(approval_id, autoescape=True)).limit(2)
    async with engine.connect() as conn:
        return [_approval(r) for r in (await conn.execute(query)).all()]


async def voted_on(engine: AsyncEngine, actor: str, approval_ids: list[str]) -> set[str]:
    """Those of ``approval_ids`` that ``actor`` has voted on."""
    query = sa.select(approval_votes.c.approval_id).where(
        approval_votes.c.actor == actor, approval_votes.c.approval_id.in_(approval_ids)
    )
    async with engine.connect() as conn:
        return set((await conn.execute(query)).scalars())


async def lock(conn: AsyncConnection, approval_id: str) -> Any:
    """The request's row, read after a write to it (with ``run_started_by``), or None.

    The write comes first: it takes SQLite's write lock (PostgreSQL's row lock) before anything is read,
    so concurrent clicks queue here, and a transaction that reads before it writes cannot fail at once.
    """
    stmt = approvals.update().where(approvals.c.id == approval_id).values(version=approvals.c.version)
    # One round trip: written, then read, with who started its run (``run_started_by``) for the gate.
    starter = sa.select(runs.c.started_by).where(runs.c.id == approvals.c.run_id).scalar_subquery()
    return (await conn.execute(stmt.returning(*approvals.c, starter.label("run_started_by")))).first()


async def votes(conn: AsyncConnection, approval_id: str) -> list[Any]:
    """Every vote on the request, in the order cast."""
    query = (
        sa.select(approval_votes)
        .where(approval_votes.c.approval_id == approval_id)
        .order_by(approval_votes.c.at)
    )
    return list((await conn.execute(query)).all())


async def voters(conn: AsyncConnection, approval_id: str) -> set[str]:
    """Who has voted on the request."""
    query = sa.select(approval_votes.c.actor).where(approval_votes.c.approval_id == approval_id)
    return set((await conn.execute(query)).scalars())


async def add_vote(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Record one vote (``approval_id``, ``actor``, ``decision``, ``comment``, ``source``, ``at``)."""
    await conn.execute(approval_votes.insert(), row)


async def add_audit(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Append one audit record (see ``audit_row``)."""
    await conn.execute(approval_audit.insert(), row)


async def settle(
    conn: AsyncConnection, row: Any, status: str, now: float, auto_reason: str | None = None
) -> bool:
    """Move a pending request to ``status`` if no one changed it since ``row`` was read; True if so."""
    extra = {"auto_reason": auto_reason} if auto_reason is not None else {}
    won = await conn.execute(
        approvals.update()
        .where(approvals.c.id == row.id, approvals.c.status == "pending", approvals.c.version == row.version)
        .values(status=status, decided_at=now, version=row.version + 1, **extra)
    )
    return won.rowcount == 1


async def expire(conn: AsyncConnection, approval_id: str, now: float) -> Any:
    """Mark a still-pending request expired; its row if this call did, None if a decision came first."""
    won = await conn.execute(
        approvals.update()
        .where(approvals.c.id == approval_id, approvals.c.status == "pending")
        .values(status="expired", decided_at=now, version=approvals.c.version + 1)
    )
    if won.rowcount != 1:
        return None
    return (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).one()


async def close_pending(conn: AsyncConnection, run_id: str, now: float) -> list[str]:
    """Cancel the run's pending requests; their ids."""
    closed = await conn.execute(
        approvals.update()
        .where(approvals.c.run_id == run_id, approvals.c.status == "pending")
        .values(status="cancelled", decided_at=now, version=approvals.c.version + 1)
        .returning(approvals.c.id)
    )
    return list(closed.scalars())


async def set_approvers(conn: AsyncConnection, row: Any, approvers: list[str]) -> None:
    """Replace the request's approvers (an escalation that adds people)."""
    await conn.execute(
        approvals.update()
        .where(approvals.c.id == row.id)
        .values(approvers=approvers, version=row.version + 1)
    )


async def auto_approve_due(conn: AsyncConnection, row: Any) -> float | None:
    """When the request's ``auto_approve_after`` timer falls due, while it has not fired."""
    query = sa.select(timers.c.due_at).where(
        timers.c.run_id == row.run_id,  # the indexed column first: a run has few timers
        timers.c.ref == row.id,
        timers.c.kind == "approval_auto",
        timers.c.fired_at.is_(None),
    )
    found = (await conn.execute(query.limit(1))).scalar_one_or_none()
    return float(found) if found is not None else None


async def requested_detail(conn: AsyncConnection, approval_id: str) -> dict[str, Any]:
    """The detail of the request's ``requested`` audit record (its title, revision, deadlines, parent)."""
    query = sa.select(approval_audit.c.detail).where(
        approval_audit.c.approval_id == approval_id, approval_audit.c.action == "requested"
    )
    found = (await conn.execute(query.limit(1))).scalar_one_or_none()
    return dict(found) if isinstance(found, dict) else {}


async def status_of(conn: AsyncConnection, approval_id: str) -> Any:
    """The request's ``status`` and ``decided_at`` as they are now."""
    query = sa.select(approvals.c.status, approvals.c.decided_at).where(approvals.c.id == approval_id)
    return (await conn.execute(query)).one()


async def signal_run(conn: AsyncConnection, run_id: str, payload: dict[str, Any], now: float) -> None:
    """Put the decision in the run's inbox: the runtime applies it to the run (every process is told at
    commit, so one with room claims the parked run)."""
    await conn.execute(
        inbox.insert(), {"run_id": run_id, "kind": "approval", "payload": payload, "created_at": now}
    )
    await notify_work(conn, [run_id])


async def audit_rows(engine: AsyncEngine, run_id: str | None = None, since: float | None = None) -> list[Any]:
    """The audit records, oldest first, each with its request's ``step_key`` and ``title``."""
    joined = approval_audit.outerjoin(approvals, approvals.c.id == approval_audit.c.approval_id)
    query = (
        sa.select(approval_audit, approvals.c.step_key, approvals.c.title)
        .select_from(joined)
        .order_by(approval_audit.c.at, approval_audit.c.id)
    )
    if run_id is not None:
        query = query.where(approval_audit.c.run_id == run_id)
    if since is not None:
        query = query.where(approval_audit.c.at >= since)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


def _approval(r: Any) -> Approval:
    return Approval(
        r.id,
        r.run_id,
        r.step_key,
        r.status,
        r.title,
        r.description,
        r.context,
        r.approvers,
        r.required,
        r.allow_self_approval,
        r.requested_by,
        r.created_at,
        r.expires_at,
    )


async def request_row(conn: AsyncConnection, approval_id: str) -> Any:
    """The request's row, or None."""
    return (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).first()


RUN_SUMMARY = (runs.c.id, runs.c.workflow, runs.c.meta, runs.c.started_by, runs.c.status)


async def request_and_run(conn: AsyncConnection, approval_id: str) -> tuple[Any, Any] | None:
    """The request's row and its run's summary (as ``run_summary`` reads it) in one query, or None."""
    run_columns = [c.label(f"of_run_{c.name}") for c in RUN_SUMMARY]
    query = (
        sa.select(approvals, *run_columns)
        .select_from(approvals.join(runs, runs.c.id == approvals.c.run_id))
        .where(approvals.c.id == approval_id)
    )
    found = (await conn.execute(query)).first()
    if found is None:
        return None
    values = found._mapping
    row = SimpleNamespace(**{c.name: values[c] for c in approvals.c})
    run = SimpleNamespace(**{c.name: values[f"of_run_{c.name}"] for c in RUN_SUMMARY})
    return row, run


async def run_summary(conn: AsyncConnection, run_id: str) -> Any:
    """What an approval card shows of its run: ``id``, ``workflow``, ``meta``, ``started_by``, ``status``."""
    return (await conn.execute(sa.select(*RUN_SUMMARY).where(runs.c.id == run_id))).one()


async def votes_in_card_order(conn: AsyncConnection, approval_id: str) -> list[Any]:
    """Every vote on the request, by time and then by voter, as a card lists them."""
    query = (
        sa.select(approval_votes)
        .where(approval_votes.c.approval_id == approval_id)
        .order_by(approval_votes.c.at, approval_votes.c.actor)
    )
    return list((await conn.execute(query)).all())


async def previous_feedback(conn: AsyncConnection, row: Any) -> Any:
    """The request for changes (``actor``, ``comment``) that sent the work back before this revision."""
    earlier = sa.select(approvals.c.id).where(
        approvals.c.run_id == row.run_id,
        approvals.c.step_key == row.step_key,
        approvals.c.revision == row.revision - 1,
    )
    query = (
        sa.select(approval_votes.c.actor, approval_votes.c.comment)
        .where(approval_votes.c.approval_id.in_(earlier), approval_votes.c.decision == "changes")
        .order_by(approval_votes.c.at.desc())
        .limit(1)
    )
    return (await conn.execute(query)).first()


async def latest_identities(conn: AsyncConnection, refs: list[str]) -> dict[str, Any]:
    """ref -> the identity dict of that person's latest logged action."""
    latest = (
        sa.select(sa.func.max(action_log.c.id))
        .where(action_log.c.actor.in_(refs))
        .group_by(action_log.c.actor)
    )
    query = sa.select(action_log.c.actor, action_log.c.identity).where(action_log.c.id.in_(latest))
    return {actor: identity for actor, identity in (await conn.execute(query)).all()}
