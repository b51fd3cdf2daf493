"""What time does to an approval request: escalation rungs, expiry, and closing when its run ends.

Each is one transaction on the request row; a timer that rings is marked fired in that same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.approvals import policy
from bot.approvals.views import display, names
from bot.storage import approvals as rows
from bot.storage.approvals import audit_row
from bot.storage.timers import claim_timer
from engine.durations import format_duration
from engine.signals import ApprovalDecided

AUTO_APPROVE = "approval_auto"  # the timer of ``auto_approve_after``; its run's inbox asks auto_approve()


class ApprovalDeadlines:
    """The timer-driven half of ``ApprovalStore``."""

    engine: AsyncEngine
    clock: Callable[[], float]
    on_change: list[Callable[[Any, str, str, dict[str, Any]], Awaitable[None]]]

    async def _changed(
        self, conn: AsyncConnection, approval_id: str, event: str, detail: dict[str, Any]
    ) -> None:
        for hook in self.on_change:
            await hook(conn, approval_id, event, detail)

    async def escalate(self, approval_id: str, rung: int, timer_id: int | None = None) -> str | None:
        """Apply one escalation rung if the request still waits: "reminded", "escalated" or "nothing".

        With ``timer_id`` the timer is marked fired in the same transaction (compare-and-set), so a rung
        is applied exactly once across processes and a crash cannot mark it fired without applying it.
        """
        now = self.clock()
        async with self.engine.begin() as conn:
            if timer_id is not None and not await claim_timer(conn, timer_id, now):
                return None
            row = await rows.lock(conn, approval_id)
            if row is None or row.status != "pending" or not row.escalation or rung >= len(row.escalation):
                # Decided first, or the rung no longer exists: the timer fired and does nothing.
                return "nothing" if timer_id is not None else None
            _after, remind, add = row.escalation[rung]
            voted = await rows.voters(conn, row.id)
            detail: dict[str, Any] = {"rung": rung, "remind": bool(remind), "add_approvers": list(add)}
            approvers = list(dict.fromkeys([*row.approvers, *add])) if add else list(row.approvers)
            if add:
                await rows.set_approvers(conn, row, approvers)
            detail["waiting_on"] = policy.waiting_on(approvers, voted)
            await rows.add_audit(
                conn, audit_row(row.id, row.run_id, "timer", "escalated", detail, "engine", now)
            )
            await self._changed(conn, row.id, "escalated", detail)
        return "reminded" if remind else "escalated"

    async def close_for_run(self, run_id: str, status: str) -> int:
        """Close the requests still pending for a run that ended, so their buttons go away."""
        now = self.clock()
        async with self.engine.begin() as conn:
            closed = await rows.close_pending(conn, run_id, now)
            for approval_id in closed:
                detail = {"run_status": status}
                await rows.add_audit(
                    conn, audit_row(approval_id, run_id, "engine", "closed", detail, "engine", now)
                )
                await self._changed(conn, approval_id, "closed", detail)
        return len(closed)

    async def auto_approve(self, approval_id: str | None) -> ApprovalDecided | None:
        """Approve a request nobody objected to within ``auto_approve_after`` (a reject or changes vote is an
        objection: the request then waits for people, up to its ``timeout``)."""
        now = self.clock()
        async with self.engine.begin() as conn:
            row = await rows.lock(conn, approval_id) if approval_id is not None else None
            if row is None or row.status != "pending":
                return None  # decided, expired or withdrawn first
            cast = await rows.votes(conn, row.id)
            objected = [v.actor for v in cast if v.decision != "approve"]
            if objected:
                detail: dict[str, Any] = {"objected_by": objected}
                held = audit_row(row.id, row.run_id, "timer", "auto_approve_withheld", detail, "engine", now)
                await rows.add_audit(conn, held)
                return None
            after = float((await rows.requested_detail(conn, row.id)).get("auto_approve_after") or 0)
            reason = f"no objection within {format_duration(after)} (auto_approve_after)"
            if not await rows.settle(conn, row, "approved", now, auto_reason=reason):
                return None
            approved = [v.actor for v in cast]
            detail = {"reason": reason, "approvers": approved}
            await rows.add_audit(
                conn, audit_row(row.id, row.run_id, "timer", "auto_approved", detail, "engine", now)
            )
            await self._changed(conn, row.id, "decided", {"actor": "engine", "status": "approved"})
            known = await names(conn, approved)
        shown = [display(a, known) for a in approved]
        outputs = {
            "auto": True,
            "reason": reason,
            "approvers": approved,
            "approver_names": shown,
            "decided_by": None,
        }
        return ApprovalDecided(row.step_key, "approved", outputs, reason)

    async def expire(self, approval_id: str | None) -> ApprovalDecided | None:
        """Close a request whose time ran out (unless a decision got there first)."""
        now = self.clock()
        async with self.engine.begin() as conn:
            row = await rows.expire(conn, approval_id, now) if approval_id is not None else None
            if row is None:
                return None  # decided (or expired by another process) first
            detail = {"on_timeout": row.on_timeout}
            await rows.add_audit(
                conn, audit_row(row.id, row.run_id, "timer", "expired", detail, "engine", now)
            )
            await self._changed(conn, row.id, "expired", {"on_timeout": row.on_timeout})
        outcome = policy.OUTCOME_ON_TIMEOUT[row.on_timeout]
        return ApprovalDecided(
            row.step_key,
            outcome,
            {"timed_out": True},
            f"no decision before the deadline; on_timeout is {row.on_timeout}",
        )
