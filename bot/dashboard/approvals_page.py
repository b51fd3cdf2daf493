"""The approvals page: every request still waiting, with its age and deadline, and which of them the
signed-in person may decide (the same test ``/approvals`` applies: an approver, not their own run unless the
request allows it, no vote yet)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.dashboard.queries import request_asks, run_workflows, vote_counts
from bot.identity import Identity
from cards.model import FormField
from handlers.approval_forms import approve_form
from handlers.approvals import decidable
from handlers.services import Services


@dataclass(frozen=True)
class Waiting:
    """One pending request as the page lists it."""

    id: str
    run_id: str
    workflow: str
    step_key: str
    title: str
    approvers: list[str]
    required: int
    votes: int  # approvals so far
    requested_by: str
    created_at: float
    expires_at: float | None
    mine: bool  # the signed-in person may decide it
    fields: tuple[FormField, ...] = ()  # a form approval's fields, filled in to approve
    can_revise: bool = False  # "Request changes" is offered (the comment is the feedback)

    def age(self, now: float) -> float:
        return max(now - self.created_at, 0.0)

    def left(self, now: float) -> float | None:
        """Seconds until its deadline (0 once past), None without one."""
        return None if self.expires_at is None else max(self.expires_at - now, 0.0)


@dataclass(frozen=True)
class ApprovalsPage:
    mine: list[Waiting]
    others: list[Waiting]  # waiting for someone else


async def load_approvals(svc: Services, who: Identity) -> ApprovalsPage:
    """Every pending request, oldest first, split into those ``who`` may decide and the rest."""
    store = svc.runtime.approvals
    pending = await store.pending()
    for_me = {a.id for a in await decidable(svc, who)}
    engine = svc.runtime.store.engine
    workflows = await run_workflows(engine, sorted({a.run_id for a in pending}))
    votes = await vote_counts(engine, [a.id for a in pending])
    asks = await request_asks(engine, [a.id for a in pending])
    lines = [
        Waiting(
            a.id,
            a.run_id,
            workflows.get(a.run_id, "?"),
            a.step_key,
            a.title,
            list(a.approvers),
            a.required,
            votes.get(a.id, 0),
            a.requested_by,
            a.created_at,
            a.expires_at,
            a.id in for_me,
            approve_form(a.id, a.title, asks[a.id].form).fields if a.id in asks and asks[a.id].form else (),
            a.id in asks and asks[a.id].can_revise,
        )
        for a in pending
    ]
    return ApprovalsPage([w for w in lines if w.mine], [w for w in lines if not w.mine])
