"""``/api/v1/runs``: start (Idempotency-Key), list (filters, cursors), get, cancel, retry, rollback."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from bot.api import cursors
from bot.api.callers import PLACE
from bot.api.context import ApiContext
from bot.api.models import (
    ApprovalInfo,
    Body,
    Done,
    EventInfo,
    RewindRequest,
    RollbackRequest,
    RunDetail,
    RunPage,
    RunStatusName,
    RunSummary,
    StartRun,
    StepInfo,
)
from bot.api.problems import RequestInvalid
from bot.api.routing import Call, Reply
from bot.errors import Conflict, NotFound
from bot.runtime.catalog import check_may_run
from bot.runtime.starts import new_run_id
from bot.storage import idempotency
from bot.storage.run_pages import page_of_runs, run_detail
from bot.storage.run_rows import RunRow
from engine.checkpoints import REUSED, is_undone
from engine.inputs import InputError, resolve_inputs
from handlers.run_actions import steer

IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENTS_SHOWN = 1000  # the newest run detail holds at most this many events; the SSE stream has them all


class RunQuery(Body):
    workflow: str | None = Field(
        default=None, min_length=1, max_length=80, description="Only runs of this workflow"
    )
    status: RunStatusName | None = Field(default=None, description="Only runs in this state")
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = Field(
        default=None, min_length=1, max_length=200, description="next_cursor of the previous page"
    )


class RunEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.svc = ctx.services

    async def start(self, call: Call) -> Reply:
        """Start a run, as ``/workflow run`` does; a retried POST with the same Idempotency-Key starts one."""
        body: StartRun = call.body
        caller = call.who
        who = caller.who
        loaded = self.svc.catalog.find(body.workflow)
        check_may_run(loaded, who, PLACE)
        try:
            resolve_inputs(loaded.spec, body.inputs)
        except InputError as exc:
            problems = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
            fields = [{"field": f"body.inputs.{k}", "message": v} for k, v in exc.problems.items()]
            raise RequestInvalid(f"Nothing started. {loaded.spec.name} inputs: {problems}", fields) from None
        key = idempotency_key(call)
        run_id = new_run_id()
        if key is not None:
            digest = hashlib.sha256(
                json.dumps([loaded.spec.name, body.inputs], sort_keys=True).encode()
            ).hexdigest()
            wanted = idempotency.KeyedRequest(who.ref, key, digest, run_id, self.svc.now())
            earlier = await idempotency.claim(self.svc.runtime.store.engine, wanted)
            if earlier is not None:
                return await self._replay(earlier, digest)
        meta = {"source": "api", "via": caller.via, "who": who.to_dict()}
        try:
            started = await self.svc.runtime.submit(
                loaded, body.inputs, started_by=who.ref, meta=meta, run_id=run_id
            )
        except BaseException:
            if key is not None:
                await idempotency.release(self.svc.runtime.store.engine, who.ref, key)
            await self.ctx.record(caller, {"start": loaded.spec.name}, "error", None)
            raise
        await self.ctx.record(
            caller, {"start": loaded.spec.name, "inputs": body.inputs}, "ok", started.run_id
        )
        row = await self._row(started.run_id)
        return Reply(summary(row), 201, {"Location": f"/api/v1/runs/{row.id}"})

    async def _replay(self, earlier: idempotency.KeyedRequest, digest: str) -> Reply:
        if earlier.request_hash != digest:
            raise RequestInvalid(
                f"This {IDEMPOTENCY_HEADER} was first sent with another workflow or other inputs (run "
                f"{earlier.run_id}); use a new key for a new request.",
                [{"field": f"header.{IDEMPOTENCY_HEADER}", "message": "reused with a different body"}],
            )
        row = await self.svc.runtime.store.run_row(earlier.run_id)
        if row is None:
            raise Conflict(
                f"The first request with this {IDEMPOTENCY_HEADER} is still starting run {earlier.run_id}; "
                "send it again in a moment."
            )
        headers = {"Location": f"/api/v1/runs/{row.id}", "Idempotent-Replayed": "true"}
        return Reply(summary(row), 200, headers)

    async def index(self, call: Call) -> RunPage:
        """Runs, newest first, a page at a time."""
        query: RunQuery = call.query
        after = cursors.decode(query.cursor) if query.cursor else None
        rows = await page_of_runs(
            self.svc.runtime.store.engine, query.limit + 1, after, query.workflow, query.status
        )
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = cursors.encode(rows[-1].created_at, rows[-1].id) if more and rows else None
        return RunPage(runs=[summary(r) for r in rows], next_cursor=cursor)

    async def get(self, call: Call) -> RunDetail:
        """A run with its steps, outputs, approvals and events."""
        run_ref = call.path["run_id"]
        found = await run_detail(self.svc.runtime.store.engine, run_ref, EVENTS_SHOWN)
        if found is None:
            raise NotFound(f"No run {run_ref}; GET /api/v1/runs lists the recent ones")
        row, approvals = found.run, found.approvals
        steps = sorted(found.steps, key=lambda s: (s.started_at is None, s.started_at or 0.0, s.key))
        events = found.events
        return RunDetail(
            **summary(row).model_dump(),
            outputs=row.outputs,
            rerun_of=row.meta.get("rerun_of"),
            rerun_from=row.meta.get("rerun_from"),
            steps=[
                StepInfo(
                    key=s.key,
                    status=str(s.status),
                    attempt=s.attempt,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                    error=s.error,
                    outputs=s.outputs,
                    undone=is_undone(s),
                    reused=s.compensation == REUSED,
                )
                for s in steps
            ],
            approvals=[approval_info(a) for a in approvals],
            events=[EventInfo(seq=e.seq, type=e.type, step=e.step_key, data=e.data, at=e.at) for e in events],
        )

    async def cancel(self, call: Call) -> Done:
        return await self._steer(call, "cancel")

    async def retry(self, call: Call) -> Done:
        return await self._steer(call, "retry")

    async def rollback(self, call: Call) -> Done:
        body: RollbackRequest = call.body
        return await self._steer(call, "rollback", body.to)

    async def rewind(self, call: Call) -> Done:
        body: RewindRequest = call.body
        return await self._steer(call, "rewind", body.to)

    async def _steer(self, call: Call, choice: str, to: str | None = None) -> Done:
        row = await self._row(call.path["run_id"])
        outcome = "ok"
        try:
            message = await steer(self.svc, row.id, choice, call.who.who, PLACE, to=to)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            await self.ctx.record(call.who, {choice: row.id, **({"to": to} if to else {})}, outcome, row.id)
        return Done(run_id=row.id, message=message)

    async def _row(self, run_ref: str) -> RunRow:
        row = await self.svc.runtime.store.run_row(run_ref)
        if row is None:
            raise NotFound(f"No run {run_ref}; GET /api/v1/runs lists the recent ones")
        return row


def idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200 or not key.isascii() or not key.isprintable():
        raise RequestInvalid(
            f"An {IDEMPOTENCY_HEADER} is 1-200 printable ASCII characters (a UUID, say).",
            [{"field": f"header.{IDEMPOTENCY_HEADER}", "message": "1-200 printable ASCII characters"}],
        )
    return key


def summary(row: RunRow) -> RunSummary:
    """A run's row as the API lists it."""
    return RunSummary(
        id=row.id,
        workflow=row.workflow,
        status=row.status,  # type: ignore[arg-type]  # the runs table holds only RunStatus values
        started_by=row.started_by,
        inputs=row.inputs,
        created_at=row.created_at,
        finished_at=row.finished_at,
        error=row.error,
    )


def approval_info(row: Any) -> ApprovalInfo:
    """An approval request's row as the API shows it."""
    return ApprovalInfo(
        id=row.id,
        run_id=row.run_id,
        step=row.step_key,
        status=row.status,
        kind=row.kind,
        title=row.title,
        description=row.description,
        approvers=list(row.approvers or []),
        required=row.required,
        allow_self_approval=row.allow_self_approval,
        requested_by=row.requested_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        form=row.form,
        can_revise=bool(row.can_revise),
    )
