"""Withdrawing a pending request by hand (``approvals expire``, ``/approvals expire``): one transaction
closes it as expired, audits who withdrew it and why, and tells its run; a withdrawal never approves."""

from __future__ import annotations

from bot.approvals.deadlines import ApprovalDeadlines
from bot.approvals.outcomes import Outcome, settled_text
from bot.approvals.views import display, names
from bot.errors import Conflict
from bot.storage import approvals as rows
from bot.storage.approvals import audit_row


class ApprovalWithdrawal(ApprovalDeadlines):
    """The hand-withdrawal half of ``ApprovalStore`` (``approval_id`` is a full id: ``get`` resolves one)."""

    async def withdraw(
        self, approval_id: str, actor: str, reason: str | None, source: str = "cli"
    ) -> Outcome:
        """Withdraw a pending request now: it closes as expired (audited with who and why), and its step is
        rejected, or its run cancelled with ``on_timeout: cancel``. A withdrawal never approves."""
        now = self.clock()
        async with self.engine.begin() as conn:
            row = await rows.expire(conn, approval_id, now)
            if row is None:
                current = await rows.request_row(conn, approval_id)
                refusal: Exception = Conflict(await settled_text(conn, current))
            else:
                outcome = "cancel" if row.on_timeout == "cancel" else "rejected"
                detail = {"withdrawn": True, "reason": reason, "outcome": outcome}
                await rows.add_audit(
                    conn, audit_row(row.id, row.run_id, actor, "expired", detail, source, now)
                )
                who = display(actor, await names(conn, [actor]))
                why = f"withdrawn by {who}" + (f": {reason}" if reason else "")
                payload = {
                    "key": row.step_key,
                    "outcome": outcome,
                    "reason": why,
                    "outputs": {"withdrawn": True, "withdrawn_by": actor, "comment": reason},
                }
                await rows.signal_run(conn, row.run_id, payload, now)
                await self._changed(conn, row.id, "expired", {"withdrawn": True, "actor": actor})
        if row is None:
            raise refusal
        then = "the run is cancelled" if outcome == "cancel" else f"step {row.step_key} is rejected"
        return Outcome(f"Withdrew request {row.id} ({why}); {then}", row.run_id, True)
