"""Approval requests, votes and their audit: every decision is a compare-and-set on the request row."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import Conflict, NotFound, NotPermitted
from bot.storage.journal import Batch
from bot.storage.tables import approval_audit, approval_votes, approvals, inbox, runs, timers
from bot.storage.timers import claim_timer
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
        # Chat presence, written in the same transaction: a new request (into the run's batch), and every
        # later change (vote, expiry, escalation) inside the transaction that made it.
        self.on_request: list[Callable[[Batch, dict[str, Any], RunState, float], None]] = []
        self.on_change: list[Callable[[Any, str, str, dict[str, Any]], Awaitable[None]]] = []

    def add_request(self, batch: Batch, state: RunState, req: RequestApproval, now: float) -> str:
        """Add a new request, its timers and its audit record to the run's batch; returns its id.

        An automatic approval (``req.auto``) is stored already approved, with its reason, so the audit
        shows it beside the decisions people made.
        """
        approval_id = secrets.token_hex(5)
        expires = now + req.timeout if req.timeout and not req.auto else None
        row = {
            "id": approval_id,
            "run_id": state.run_id,
            "step_key": req.key,
            "status": "approved" if req.auto else "pending",
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
            "decided_at": now if req.auto else None,
            "version": 0,
            "kind": req.kind,
            "veto": req.veto,
            "channel": req.channel,
            "notify": req.notify,
            "revision": req.revision,
            "max_revisions": req.max_revisions,
            "can_revise": req.can_revise,
            "form": req.form or None,
            "escalation": [list(r) for r in req.escalation] or None,
            "auto_reason": req.auto,
        }
        batch.add(approvals.insert(), row)
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
        for rung, (after, _remind, _add) in enumerate(req.escalation if not req.auto else ()):
            batch.add(
                timers.insert(),
                {
                    "run_id": state.run_id,
                    "step_key": req.key,
                    "kind": f"approval_escalate:{rung}",
                    "ref": approval_id,
                    "due_at": now + after,
                },
            )
        action = "auto_approved" if req.auto else "requested"
        detail = {"title": req.title, "revision": req.revision, **({"reason": req.auto} if req.auto else {})}
        batch.add(
            approval_audit.insert(),
            _audit(approval_id, state.run_id, state.started_by, action, detail, "engine", now),
        )
        for hook in self.on_request:
            hook(batch, row, state, now)
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
        values: dict[str, Any] | None = None,
        aliases: tuple[str, ...] = (),
        name: str | None = None,
        where: dict[str, Any] | None = None,
    ) -> Outcome:
        """Record ``actor``'s vote (approve, reject or changes); when it settles the request, signal the run.

        Everything happens in one transaction that starts by writing the request's row, so concurrent
        clicks queue on it: a compare-and-set on the row decides, and each person counts once.
        """
        if decision not in ("approve", "reject", "changes"):
            raise Conflict(f"'{decision}' is not a decision; use approve, reject or changes")
        request = await self.get(approval_id)
        async with self.engine.begin() as conn:
            # Refusals are audited too, so the block commits and the refusal is raised after it.
            result = await self._decide(
                conn,
                request.id,
                actor,
                decision,
                comment,
                groups,
                source,
                values or {},
                aliases,
                name,
                where or {},
            )
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
        values: dict[str, Any],
        aliases: tuple[str, ...] = (),
        name: str | None = None,
        where: dict[str, Any] | None = None,
    ) -> Outcome | Exception:
        now = self.clock()
        shown = name or actor  # how the person reads their own outcome
        # A write first: it takes SQLite's write lock (PostgreSQL's row lock) before anything is read.
        await conn.execute(
            approvals.update().where(approvals.c.id == approval_id).values(version=approvals.c.version)
        )
        row = (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).one()
        refused = await self._gate(conn, row, actor, decision, groups, source, aliases, now, where=where)
        if refused is not None:
            return refused
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
            _audit(
                row.id,
                row.run_id,
                actor,
                decision,
                {"comment": comment, **({"values": values} if values else {}), **(where or {})},
                source,
                now,
            ),
        )
        votes = (
            await conn.execute(
                sa.select(approval_votes.c.actor, approval_votes.c.decision)
                .where(approval_votes.c.approval_id == row.id)
                .order_by(approval_votes.c.at)
            )
        ).all()
        approved = [v.actor for v in votes if v.decision == "approve"]
        rejected = [v.actor for v in votes if v.decision == "reject"]
        final = _settles(row, decision, len(approved), len(rejected))
        if final is None:
            message = (
                f"Approved by {shown}, {len(approved)} of {row.required}"
                if decision == "approve"
                else (f"Rejected by {shown}, {len(rejected)} of {row.required} rejections end it")
            )
            await self._changed(conn, row.id, "vote", {"actor": actor, "decision": decision})
            return Outcome(message, row.run_id, False)
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
        outcome = {"approved": "approved", "rejected": "rejected", "changes": "changes_requested"}[final]
        payload = {
            "key": row.step_key,
            "outcome": outcome,
            "reason": comment or f"{outcome} by {actor}",
            "outputs": {
                "approvers": approved,
                "rejected_by": rejected,
                "decided_by": actor,
                "decided_by_name": shown,  # how chat names them, e.g. "@alice"
                "comment": comment,
                "feedback": comment if final == "changes" else None,
                **({"form": values} if values else {}),
            },
        }
        await conn.execute(
            inbox.insert(), {"run_id": row.run_id, "kind": "approval", "payload": payload, "created_at": now}
        )
        await self._changed(conn, row.id, "decided", {"actor": actor, "status": final})
        verb = {"approved": "Approved", "rejected": "Rejected", "changes": "Changes requested"}[final]
        return Outcome(f"{verb} by {shown}; the run continues", row.run_id, True)

    async def check(
        self,
        approval_id: str,
        actor: str,
        decision: str,
        groups: tuple[str, ...] = (),
        source: str = "cli",
        aliases: tuple[str, ...] = (),
    ) -> None:
        """Raise now what ``decide`` would refuse (audited alike), without voting: before a form opens."""
        request = await self.get(approval_id)
        async with self.engine.begin() as conn:
            # A write first, as in ``decide``: an audit row may follow the reads (SQLite's lock rule).
            await conn.execute(
                approvals.update().where(approvals.c.id == request.id).values(version=approvals.c.version)
            )
            row = (await conn.execute(sa.select(approvals).where(approvals.c.id == request.id))).one()
            refused = await self._gate(conn, row, actor, decision, groups, source, aliases, self.clock())
        if refused is not None:
            raise refused

    async def _gate(
        self,
        conn: Any,
        row: Any,
        actor: str,
        decision: str,
        groups: tuple[str, ...],
        source: str,
        aliases: tuple[str, ...],
        now: float,
        where: dict[str, Any] | None = None,
    ) -> Exception | None:
        """Why ``actor`` may not decide now (late, not an approver, already voted), audited; else None."""
        started_by = (
            await conn.execute(sa.select(runs.c.started_by).where(runs.c.id == row.run_id))
        ).scalar_one()
        if row.status != "pending":
            await conn.execute(
                approval_audit.insert(),
                _audit(
                    row.id, row.run_id, actor, "late", {"decision": decision, **(where or {})}, source, now
                ),
            )
            return Conflict(await _already(conn, row))
        refusal = _refusal(row, actor, groups, started_by, aliases)
        if refusal is None and decision == "changes" and not row.can_revise:
            refusal = "This request cannot send the work back for changes (its step has no 'revise:')"
        if refusal:
            await conn.execute(
                approval_audit.insert(),
                _audit(
                    row.id,
                    row.run_id,
                    actor,
                    "denied",
                    {"decision": decision, "why": refusal, **(where or {})},
                    source,
                    now,
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
        return None

    async def escalate(self, approval_id: str, rung: int, timer_id: int | None = None) -> str | None:
        """Apply one escalation rung if the request still waits: "reminded", "escalated" or "nothing".

        With ``timer_id`` the timer is marked fired in the same transaction (compare-and-set), so a rung
        is applied exactly once across processes and a crash cannot mark it fired without applying it.
        """
        now = self.clock()
        async with self.engine.begin() as conn:
            if timer_id is not None and not await claim_timer(conn, timer_id, now):
                return None
            await conn.execute(
                approvals.update().where(approvals.c.id == approval_id).values(version=approvals.c.version)
            )
            row = (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).first()
            if row is None or row.status != "pending" or not row.escalation or rung >= len(row.escalation):
                # Decided first, or the rung no longer exists: the timer fired and does nothing.
                return "nothing" if timer_id is not None else None
            _after, remind, add = row.escalation[rung]
            voted = set(
                (
                    await conn.execute(
                        sa.select(approval_votes.c.actor).where(approval_votes.c.approval_id == row.id)
                    )
                ).scalars()
            )
            detail: dict[str, Any] = {"rung": rung, "remind": bool(remind), "add_approvers": list(add)}
            if add:
                approvers = list(dict.fromkeys([*row.approvers, *add]))
                await conn.execute(
                    approvals.update()
                    .where(approvals.c.id == row.id)
                    .values(approvers=approvers, version=row.version + 1)
                )
            detail["waiting_on"] = [
                a
                for a in (row.approvers if not add else [*row.approvers, *add])
                # Voters are refs ("console:alice", "slack:U024"); approvers name the part after the colon.
                if a.removeprefix("user:") not in voted | {v.partition(":")[2] for v in voted}
            ]
            await conn.execute(
                approval_audit.insert(),
                _audit(row.id, row.run_id, "timer", "escalated", detail, "engine", now),
            )
            await self._changed(conn, row.id, "escalated", detail)
        return "reminded" if remind else "escalated"

    async def _changed(self, conn: Any, approval_id: str, event: str, detail: dict[str, Any]) -> None:
        for hook in self.on_change:
            await hook(conn, approval_id, event, detail)

    async def close_for_run(self, run_id: str, status: str) -> int:
        """Close the requests still pending for a run that ended, so their buttons go away."""
        now = self.clock()
        async with self.engine.begin() as conn:
            # The write comes first (SQLite: a transaction that reads before it writes can fail at once).
            closed = list(
                (
                    await conn.execute(
                        approvals.update()
                        .where(approvals.c.run_id == run_id, approvals.c.status == "pending")
                        .values(status="cancelled", decided_at=now, version=approvals.c.version + 1)
                        .returning(approvals.c.id)
                    )
                ).scalars()
            )
            for approval_id in closed:
                await conn.execute(
                    approval_audit.insert(),
                    _audit(approval_id, run_id, "engine", "closed", {"run_status": status}, "engine", now),
                )
                await self._changed(conn, approval_id, "closed", {"run_status": status})
        return len(closed)

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
            await self._changed(conn, row.id, "expired", {"on_timeout": row.on_timeout})
        outcome = OUTCOME_ON_TIMEOUT[row.on_timeout]
        return ApprovalDecided(
            row.step_key,
            outcome,
            {"timed_out": True},
            f"no decision before the deadline; on_timeout is {row.on_timeout}",
        )


def _settles(row: Any, decision: str, approved: int, rejected: int) -> str | None:
    """The request's final state after a vote, or None while it still waits."""
    if decision == "changes":
        return "changes"
    if decision == "reject" and (row.veto or rejected >= row.required):
        return "rejected"  # veto: one reject ends it; otherwise rejects count like approvals
    return "approved" if approved >= row.required else None


def _refusal(
    row: Any, actor: str, groups: tuple[str, ...], started_by: str, aliases: tuple[str, ...] = ()
) -> str | None:
    if not row.allow_self_approval and actor == started_by:
        return (
            "You started this run, so you cannot approve it; someone else must (allow_self_approval is off)"
        )
    approvers: list[str] = row.approvers
    if not approvers:
        return None
    # A chat identity is "slack:U024BE7LH"; approvers write "user:U024BE7LH" or "user:alice" (aliases).
    names = {actor, *aliases}
    mine = {*names, *(f"user:{n}" for n in names), *(f"group:{g}" for g in groups)}
    mine |= {m.lower() for m in mine}
    if mine & {a.lower() for a in approvers} or mine & set(approvers):
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
    from bot.approvals.views import display, names  # the chat names of the people behind the refs

    deciders = [v.actor for v in votes if (v.decision != "reject") == (current.status == "approved")]
    known = await names(conn, deciders)
    who = ", ".join(display(actor, known) for actor in deciders)
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
