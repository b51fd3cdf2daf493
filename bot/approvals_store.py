"""Approval requests, votes and their audit: every decision is a compare-and-set on the request row."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import Conflict, NotFound, NotPermitted
from bot.storage.journal import Batch
from bot.storage.tables import approval_audit, approval_votes, approvals, inbox, runs, timers
from engine.signals import ApprovalDecided, RequestApproval
from engine.state import RunState

OUTCOME_ON_TIMEOUT = {"reject": "rejected", "approve": "approved", "cancel": "cancel"}


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


@dataclass(frozen=True)
class Outcome:
    """What a decision did: the message for the person, and whether the run resumes."""

    message: str
    run_id: str
    resolved: bool


class ApprovalStore:
    """Creates approval requests and applies decisions and timeouts to them."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock

    def add_request(self, batch: Batch, state: RunState, req: RequestApproval, now: float) -> str:
        """Add a new request (and its timeout timer) to the run's batch; returns its id."""
        approval_id = secrets.token_hex(5)
        expires = now + req.timeout if req.timeout else None
        batch.add(
            approvals.insert(),
            {
                "id": approval_id,
                "run_id": state.run_id,
                "step_key": req.key,
                "status": "pending",
                "title": req.title,
                "description": req.description,
                "context": req.context,
                "approvers": req.approvers,
                "required": req.required,
                "allow_self_approval": req.allow_self_approval,
                "requested_by": state.started_by,
                "on_timeout": req.on_timeout,
                "created_at": now,
                "expires_at": expires,
                "version": 0,
            },
        )
        if expires is not None:
            batch.add(
                timers.insert(),
                {
                    "run_id": state.run_id,
                    "step_key": req.key,
                    "kind": "approval_timeout",
                    "ref": approval_id,
                    "due_at": expires,
                },
            )
        batch.add(
            approval_audit.insert(),
            _audit(
                approval_id, state.run_id, state.started_by, "requested", {"title": req.title}, "engine", now
            ),
        )
        return approval_id

    async def pending(self) -> list[Approval]:
        """Every request still waiting for a decision, oldest first."""
        query = sa.select(approvals).where(approvals.c.status == "pending").order_by(approvals.c.created_at)
        async with self.engine.connect() as conn:
            return [_approval(r) for r in (await conn.execute(query)).all()]

    async def get(self, approval_id: str) -> Approval:
        """One request by id (or unique prefix)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(approvals)
                    .where(approvals.c.id.startswith(approval_id, autoescape=True))
                    .limit(2)
                )
            ).all()
        if len(rows) != 1:
            raise NotFound(
                f"No approval request {approval_id!r}; `switchboard approvals list` shows those waiting"
            )
        return _approval(rows[0])

    async def decide(
        self,
        approval_id: str,
        actor: str,
        decision: str,
        comment: str | None,
        groups: tuple[str, ...] = (),
        source: str = "cli",
    ) -> Outcome:
        """Record ``actor``'s vote; when it settles the request, signal the run (all in one transaction)."""
        request = await self.get(approval_id)
        async with self.engine.begin() as conn:
            # Refusals are audited too, so the block commits and the refusal is raised after it.
            result = await self._decide(conn, request.id, actor, decision, comment, groups, source)
        if isinstance(result, Exception):
            raise result
        return result

    async def _decide(
        self,
        conn: Any,
        approval_id: str,
        actor: str,
        decision: str,
        comment: str | None,
        groups: tuple[str, ...],
        source: str,
    ) -> Outcome | Exception:
        now = self.clock()
        # A write first: it takes SQLite's write lock (PostgreSQL's row lock) before anything is read.
        await conn.execute(
            approvals.update().where(approvals.c.id == approval_id).values(version=approvals.c.version)
        )
        row = (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).one()
        started_by = (
            await conn.execute(sa.select(runs.c.started_by).where(runs.c.id == row.run_id))
        ).scalar_one()
        if row.status != "pending":
            await conn.execute(
                approval_audit.insert(),
                _audit(row.id, row.run_id, actor, "late", {"decision": decision}, source, now),
            )
            return Conflict(await _already(conn, row))
        refusal = _refusal(row, actor, groups, started_by)
        if refusal:
            await conn.execute(
                approval_audit.insert(),
                _audit(
                    row.id, row.run_id, actor, "denied", {"decision": decision, "why": refusal}, source, now
                ),
            )
            return NotPermitted(refusal)
        vote = (
            await conn.execute(
                sa.select(approval_votes).where(
                    approval_votes.c.approval_id == row.id, approval_votes.c.actor == actor
                )
            )
        ).first()
        if vote is not None:
            return Conflict(f"You already decided this request: {vote.decision} at {_hhmm(vote.at)}")
        await conn.execute(
            approval_votes.insert(),
            {
                "approval_id": row.id,
                "actor": actor,
                "decision": decision,
                "comment": comment,
                "source": source,
                "at": now,
            },
        )
        await conn.execute(
            approval_audit.insert(),
            _audit(row.id, row.run_id, actor, decision, {"comment": comment}, source, now),
        )
        approved = (
            (
                await conn.execute(
                    sa.select(approval_votes.c.actor).where(
                        approval_votes.c.approval_id == row.id, approval_votes.c.decision == "approve"
                    )
                )
            )
            .scalars()
            .all()
        )
        final = (
            "rejected" if decision == "reject" else ("approved" if len(approved) >= row.required else None)
        )
        if final is None:
            return Outcome(f"Approved by {actor}, {len(approved)} of {row.required}", row.run_id, False)
        won = await conn.execute(
            approvals.update()
            .where(
                approvals.c.id == row.id,
                approvals.c.status == "pending",
                approvals.c.version == row.version,
            )
            .values(status=final, decided_at=now, version=row.version + 1)
        )
        if won.rowcount != 1:
            return Conflict(await _already(conn, row))
        payload = {
            "key": row.step_key,
            "outcome": final,
            "reason": comment or f"{final} by {actor}",
            "outputs": {"approvers": list(approved), "decided_by": actor, "comment": comment},
        }
        await conn.execute(
            inbox.insert(), {"run_id": row.run_id, "kind": "approval", "payload": payload, "created_at": now}
        )
        verb = "Approved" if final == "approved" else "Rejected"
        return Outcome(f"{verb} by {actor}; the run continues", row.run_id, True)

    async def expire(self, approval_id: str | None) -> ApprovalDecided | None:
        """Close a request whose time ran out (unless a decision got there first)."""
        now = self.clock()
        async with self.engine.begin() as conn:
            won = await conn.execute(
                approvals.update()
                .where(approvals.c.id == approval_id, approvals.c.status == "pending")
                .values(status="expired", decided_at=now, version=approvals.c.version + 1)
            )
            if won.rowcount != 1:
                return None  # decided (or expired by another process) first
            row = (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).one()
            await conn.execute(
                approval_audit.insert(),
                _audit(row.id, row.run_id, "timer", "expired", {"on_timeout": row.on_timeout}, "engine", now),
            )
        outcome = OUTCOME_ON_TIMEOUT[row.on_timeout]
        return ApprovalDecided(
            row.step_key,
            outcome,
            {"timed_out": True},
            f"no decision before the deadline; on_timeout is {row.on_timeout}",
        )


def _refusal(row: Any, actor: str, groups: tuple[str, ...], started_by: str) -> str | None:
    if not row.allow_self_approval and actor == started_by:
        return (
            "You started this run, so you cannot approve it; someone else must (allow_self_approval is off)"
        )
    approvers: list[str] = row.approvers
    if not approvers:
        return None
    mine = {actor, f"user:{actor}", *(f"group:{g}" for g in groups)}
    if mine & set(approvers):
        return None
    return f"You are not an approver for this request (approvers: {', '.join(approvers)})"


async def _already(conn: Any, row: Any) -> str:
    votes = (
        await conn.execute(
            sa.select(approval_votes)
            .where(approval_votes.c.approval_id == row.id)
            .order_by(approval_votes.c.at)
        )
    ).all()
    current = (
        await conn.execute(
            sa.select(approvals.c.status, approvals.c.decided_at).where(approvals.c.id == row.id)
        )
    ).one()
    who = (
        ", ".join(v.actor for v in votes if v.decision != "reject")
        if current.status == "approved"
        else ", ".join(v.actor for v in votes if v.decision == "reject")
    )
    when = _hhmm(current.decided_at) if current.decided_at else "?"
    if current.status == "expired":
        return f"This request expired at {when}"
    return f"Already {current.status} by {who or 'the engine'} at {when}"


def _hhmm(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M UTC")


def _audit(
    approval_id: str, run_id: str, actor: str, action: str, detail: dict[str, Any], source: str, at: float
) -> dict[str, Any]:
    return {
        "approval_id": approval_id,
        "run_id": run_id,
        "actor": actor,
        "action": action,
        "detail": detail,
        "source": source,
        "at": at,
    }


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
