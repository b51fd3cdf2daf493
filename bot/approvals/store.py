"""Approval requests, votes and their audit: every decision is a compare-and-set on the request row."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.approvals import policy
from bot.approvals.deadlines import AUTO_APPROVE
from bot.approvals.outcomes import Outcome, hhmm, settled_text
from bot.approvals.views import display, names
from bot.approvals.withdrawal import ApprovalWithdrawal
from bot.errors import Conflict, NotFound, NotPermitted
from bot.storage import approvals as rows
from bot.storage import email_links
from bot.storage.approvals import Approval, audit_row
from bot.storage.journal import Batch
from engine.signals import RequestApproval
from engine.state import RunState

__all__ = ["ApprovalStore", "Outcome"]


class ApprovalStore(ApprovalWithdrawal):
    """Creates approval requests and applies decisions and timeouts to them."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        # Chat presence, written in the same transaction: a new request (into the run's batch), and every
        # later change (vote, expiry, escalation) inside the transaction that made it.
        self.on_request: list[Callable[[Batch, dict[str, Any], RunState, float], None]] = []
        self.on_change: list[Callable[[Any, str, str, dict[str, Any]], Awaitable[None]]] = []
        # The run a decision settled, told inside the deciding transaction once its signal is written
        # (the runtime claims the run there, to resume it here as soon as the decision commits).
        self.on_settled: list[Callable[[AsyncConnection, str], Awaitable[None]]] = []

    def add_request(
        self, batch: Batch, state: RunState, req: RequestApproval, now: float, parent: str | None = None
    ) -> str:
        """Add a new request, its timers and its audit record to the run's batch; returns its id.

        An automatic approval (``req.auto``) is stored already approved, with its reason, so the audit
        shows it beside the decisions people made. ``parent`` is the request this one follows (the step's
        previous ask: before a revision, or before a retry of the run).
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
            "request": req.request,
            "max_revisions": req.max_revisions,
            "can_revise": req.can_revise,
            "form": req.form or None,
            "escalation": [list(r) for r in req.escalation] or None,
            "auto_reason": req.auto,
        }
        timer_rows = []
        if expires is not None:
            timer_rows.append(
                {
                    "run_id": state.run_id,
                    "step_key": req.key,
                    "kind": "approval_timeout",
                    "ref": approval_id,
                    "due_at": expires,
                }
            )
        if req.auto_after is not None and not req.auto:
            timer_rows.append(
                {
                    "run_id": state.run_id,
                    "step_key": req.key,
                    "kind": AUTO_APPROVE,
                    "ref": approval_id,
                    "due_at": now + req.auto_after,
                }
            )
        for rung, (after, _remind, _add) in enumerate(req.escalation if not req.auto else ()):
            timer_rows.append(
                {
                    "run_id": state.run_id,
                    "step_key": req.key,
                    "kind": f"approval_escalate:{rung}",
                    "ref": approval_id,
                    "due_at": now + after,
                }
            )
        action = "auto_approved" if req.auto else "requested"
        detail: dict[str, Any] = {"title": req.title, "revision": req.revision, "request": req.request}
        if req.auto:
            detail["reason"] = req.auto
        if req.auto_after is not None and not req.auto:
            detail["auto_approve_after"] = req.auto_after
        if parent is not None:
            detail["parent"] = parent
        audit = audit_row(approval_id, state.run_id, state.started_by, action, detail, "engine", now)
        rows.add_request(batch, row, timer_rows, audit)
        shown = {
            **row,
            "auto_at": now + req.auto_after if req.auto_after is not None and not req.auto else None,
        }
        for hook in self.on_request:
            hook(batch, shown, state, now)
        return approval_id

    async def parent_of(self, run_id: str, req: RequestApproval) -> str | None:
        """The id of the request a new one follows: the step's latest earlier one, if any."""
        return await rows.latest_request(self.engine, run_id, req.key, req.request)

    async def pending(self, run_id: str | None = None) -> list[Approval]:
        """Every request still waiting for a decision (of one run, when given), oldest first."""
        return await rows.pending(self.engine, run_id)

    async def get(self, approval_id: str) -> Approval:
        """One request by id (or unique prefix)."""
        found = await rows.by_prefix(self.engine, approval_id)
        if len(found) != 1:
            raise _missing(approval_id)
        return found[0]

    async def voted_on(self, actor: str, approval_ids: list[str]) -> set[str]:
        """Those of ``approval_ids`` that ``actor`` has voted on."""
        return await rows.voted_on(self.engine, actor, approval_ids)

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
        link: str | None = None,
        exact: bool = False,
    ) -> Outcome:
        """Record ``actor``'s vote (approve, reject or changes); when it settles the request, signal the run.

        Everything happens in one transaction that starts by writing the request's row, so concurrent
        clicks queue on it: a compare-and-set on the row decides, and each person counts once. ``link``
        is the id of the e-mail link that casts the vote: its use commits with the vote, so it counts once.
        With ``exact``, ``approval_id`` is a whole id (a button's), not a prefix to look up first.
        """
        if decision not in policy.DECISIONS:
            raise Conflict(f"'{decision}' is not a decision; use approve, reject or changes")
        full_id = approval_id if exact else (await self.get(approval_id)).id
        async with self.engine.begin() as conn:
            # Refusals are audited too, so the block commits and the refusal is raised after it.
            result = await self._decide(
                conn,
                full_id,
                actor,
                decision,
                comment,
                groups,
                source,
                values or {},
                aliases,
                name,
                where or {},
                link,
            )
        if isinstance(result, Exception):
            raise result
        return result

    async def _decide(
        self,
        conn: AsyncConnection,
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
        link: str | None = None,
    ) -> Outcome | Exception:
        now = self.clock()
        shown = name or actor  # how the person reads their own outcome
        row = await rows.lock(conn, approval_id)
        if row is None:
            return _missing(approval_id)
        if link is not None and (used := await email_links.use_of(conn, link)) is not None:
            return Conflict(f"This link was used already: {used.decision} at {hhmm(used.used_at)}")
        refused, earlier = await self._gate(conn, row, actor, decision, groups, source, aliases, now, where)
        if refused is not None:
            return refused
        vote = {"approval_id": row.id, "actor": actor, "decision": decision, "comment": comment}
        await rows.add_vote(conn, {**vote, "source": source, "at": now})
        if link is not None:
            await email_links.record_use(conn, link, row.id, actor, decision, now)
        detail = {"comment": comment, **({"values": values} if values else {}), **(where or {})}
        await rows.add_audit(conn, audit_row(row.id, row.run_id, actor, decision, detail, source, now))
        # The votes read under the row's lock, and this one: every vote there is now, in the order cast.
        cast = [*earlier, SimpleNamespace(**vote)]
        approved = [v.actor for v in cast if v.decision == "approve"]
        rejected = [v.actor for v in cast if v.decision == "reject"]
        final = policy.settles(row, decision, len(approved), len(rejected))
        if final is None:
            await self._changed(conn, row.id, "vote", {"actor": actor, "decision": decision})
            return Outcome(
                policy.tally(row, decision, shown, len(approved), len(rejected)), row.run_id, False
            )
        if not await rows.settle(conn, row, final, now):
            return Conflict(await settled_text(conn, row))
        known = await names(conn, approved)
        if name:
            known[actor] = name.lstrip("@")
        payload = policy.decision_payload(row, final, actor, shown, comment, approved, rejected, values)
        payload["outputs"]["approver_names"] = [display(a, known) for a in approved]
        await rows.signal_run(conn, row.run_id, payload, now)
        await self._changed(conn, row.id, "decided", {"actor": actor, "status": final})
        for hook in self.on_settled:
            await hook(conn, row.run_id)
        return Outcome(f"{policy.VERBS[final]} by {shown}; the run continues", row.run_id, True)

    async def check(
        self,
        approval_id: str,
        actor: str,
        decision: str,
        groups: tuple[str, ...] = (),
        source: str = "cli",
        aliases: tuple[str, ...] = (),
        exact: bool = False,
    ) -> None:
        """Raise now what ``decide`` would refuse (audited alike), without voting: before a form opens."""
        full_id = approval_id if exact else (await self.get(approval_id)).id
        async with self.engine.begin() as conn:
            row = await rows.lock(conn, full_id)  # an audit row may follow the reads
            if row is None:
                raise _missing(approval_id)
            refused, _ = await self._gate(conn, row, actor, decision, groups, source, aliases, self.clock())
        if refused is not None:
            raise refused

    async def _gate(
        self,
        conn: AsyncConnection,
        row: Any,
        actor: str,
        decision: str,
        groups: tuple[str, ...],
        source: str,
        aliases: tuple[str, ...],
        now: float,
        where: dict[str, Any] | None = None,
    ) -> tuple[Exception | None, list[Any]]:
        """Why ``actor`` may not decide now (late, not an approver, already voted), audited, else None;
        with the votes cast so far (read once, under the row's lock, in the order cast)."""
        started_by = str(row.run_started_by)  # read with the row's lock
        if row.status != "pending":
            detail = {"decision": decision, **(where or {})}
            await rows.add_audit(conn, audit_row(row.id, row.run_id, actor, "late", detail, source, now))
            return Conflict(await settled_text(conn, row)), []
        refusal = policy.refusal(row, actor, groups, started_by, aliases)
        if refusal is None and decision == "changes" and not row.can_revise:
            refusal = "This request cannot send the work back for changes (its step has no 'revise:')"
        if refusal:
            detail = {"decision": decision, "why": refusal, **(where or {})}
            await rows.add_audit(conn, audit_row(row.id, row.run_id, actor, "denied", detail, source, now))
            return NotPermitted(refusal), []
        cast = await rows.votes(conn, row.id)
        vote = next((v for v in cast if v.actor == actor), None)
        if vote is not None:
            detail = {"decision": decision, "first": vote.decision, **(where or {})}
            await rows.add_audit(conn, audit_row(row.id, row.run_id, actor, "repeated", detail, source, now))
            return Conflict(f"You already decided this request: {vote.decision} at {hhmm(vote.at)}"), cast
        return None, cast


def _missing(approval_id: str) -> NotFound:
    return NotFound(f"No approval request {approval_id!r}; `switchboard approvals list` shows those waiting")
