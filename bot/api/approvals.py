"""``/api/v1/approvals``: those pending for me or for a run, one request, and deciding it (audited "api")."""

from __future__ import annotations

from pydantic import Field

from bot.api.context import ApiContext
from bot.api.models import ApprovalInfo, ApprovalList, Body, Decision, DecisionResult
from bot.api.routing import Call
from bot.api.runs import approval_info
from bot.errors import NotFound
from bot.storage import approvals as rows
from handlers.approvals import decidable, decide_request


class ApprovalQuery(Body):
    run: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A run's pending requests; without it, those waiting for me",
    )


class ApprovalEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.svc = ctx.services

    async def index(self, call: Call) -> ApprovalList:
        query: ApprovalQuery = call.query
        if query.run:
            run = await self.svc.runtime.store.run_row(query.run)
            if run is None:
                raise NotFound(f"No run {query.run}; GET /api/v1/runs lists the recent ones")
            pending = [a.id for a in await self.svc.runtime.approvals.pending(run.id)]
        else:
            pending = [a.id for a in await decidable(self.svc, call.who.who)]
        return ApprovalList(approvals=[await self._info(i) for i in pending])

    async def get(self, call: Call) -> ApprovalInfo:
        return await self._info(call.path["approval_id"])

    async def decide(self, call: Call) -> DecisionResult:
        """Decide as the caller, under every rule chat applies; the audit records source "api"."""
        body: Decision = call.body
        approval_id = call.path["approval_id"]
        caller = call.who
        comment = body.feedback if body.decision == "changes" and body.feedback else body.comment
        fields = {k: _text(v) for k, v in body.fields.items()}
        where = {"platform": "api", "via": caller.via}
        outcome = "ok"
        run_id = None
        try:
            done = await decide_request(
                self.svc, caller.who, approval_id, body.decision, comment, fields, source="api", where=where
            )
            run_id = done.run_id
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            detail = {"approval": approval_id, "decision": body.decision, "fields": sorted(fields)}
            await self.ctx.record(caller, detail, outcome, run_id)
        return DecisionResult(
            approval_id=approval_id, run_id=done.run_id, resolved=done.resolved, message=done.message
        )

    async def _info(self, approval_id: str) -> ApprovalInfo:
        async with self.svc.runtime.approvals.engine.connect() as conn:
            row = await rows.request_row(conn, approval_id)
        if row is None:
            raise NotFound(f"There is no approval request {approval_id}; GET /api/v1/approvals lists yours.")
        return approval_info(row)


def _text(value: str | int | float | bool) -> str:
    """A field's value as the form would have sent it (the form's own parsing types it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
