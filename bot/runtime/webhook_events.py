"""Run, step and approval changes as outbound webhook events, queued in the commit of the change.

A small subscriber on the hooks the runtime already has: a run observer (its batch), the approval
store's ``on_request`` (the run's batch) and ``on_change`` (the decision's transaction). Event types are
the timeline's with a dot: ``run_finished`` is ``run.finished``, ``step_failed`` is ``step.failed``;
an approval's are ``approval.requested``, ``.voted``, ``.decided``, ``.escalated``, ``.expired`` and
``.closed``. Conversations queue theirs in ``ConversationStore.event``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.storage import webhooks
from bot.storage.approvals import request_row
from bot.storage.journal import Batch
from engine.state import RunState

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

APPROVAL_EVENTS = {
    "vote": "voted",
    "decided": "decided",
    "escalated": "escalated",
    "expired": "expired",
    "closed": "closed",
}


def event_type(timeline_type: str) -> str | None:
    """The webhook event type of a timeline event, or None for those the approval hooks report."""
    family, _, rest = timeline_type.partition("_")
    return f"{family}.{rest}" if family in ("run", "step") and rest else None


def observe(batch: Batch, state: RunState, rows: list[dict[str, Any]], now: float) -> None:
    """The run observer: each run and step event of the batch."""
    events = []
    for row in rows:
        kind = event_type(row["type"])
        if kind is None:
            continue
        data: dict[str, Any] = {
            "run_id": state.run_id,
            "workflow": state.workflow.name,
            "run_status": str(state.status),
            "started_by": state.started_by,
            "seq": row["seq"],
            "step": row["step_key"],
            "detail": row["data"],
        }
        if state.meta.get("parent_run_id"):
            data["parent_run_id"] = state.meta["parent_run_id"]
        events.append((kind, data))
    if events:
        webhooks.queue_in_batch(batch, events, now)


def on_request(batch: Batch, row: dict[str, Any], state: RunState, now: float) -> None:
    """A new approval request (an automatic one says ``status: approved``)."""
    webhooks.queue_in_batch(batch, [("approval.requested", _approval(row, state.workflow.name))], now)


class ApprovalEvents:
    """The approval store's ``on_change`` hook, timed by the runtime's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    async def __call__(self, conn: Any, approval_id: str, event: str, detail: dict[str, Any]) -> None:
        """A vote, decision, escalation, expiry or close, in the transaction that made it."""
        row = await request_row(conn, approval_id)
        if row is None:
            return
        data = {**_approval(dict(row._mapping), None), "detail": detail}
        await webhooks.queue(conn, f"approval.{APPROVAL_EVENTS.get(event, event)}", data, self.clock())


def _approval(row: dict[str, Any], workflow: str | None) -> dict[str, Any]:
    data = {
        k: row.get(k)
        for k in (
            "id",
            "run_id",
            "step_key",
            "status",
            "title",
            "kind",
            "required",
            "approvers",
            "requested_by",
            "expires_at",
        )
    }
    return {**data, **({"workflow": workflow} if workflow else {})}


def install(runtime: Runtime) -> None:
    """Queue ``runtime``'s run, step and approval changes for the webhook subscriptions."""
    runtime.observers.append(observe)
    runtime.approvals.on_request.append(on_request)
    runtime.approvals.on_change.append(ApprovalEvents(runtime.clock))
