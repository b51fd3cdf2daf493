"""Deciding approvals in chat: the card's buttons, the forms they open, and ``/approvals``.

Every decision goes through ``ApprovalStore.decide``, the compare-and-set the CLI uses too, so identity,
self-approval, quorum and idempotency are checked in one place; its refusals (``NotPermitted``,
``Conflict``) reach the person as the router's ephemeral reply. A button that opens a form first asks the
store whether the person may decide at all (``check``), so nobody fills in a form only to be refused.
"""

from __future__ import annotations

from typing import Any

from bot.approvals.store import Outcome
from bot.approvals.views import Request, acting, read_request, read_view
from bot.errors import BadInput, Conflict, NotFound
from bot.identity import Identity, matches
from bot.storage.approvals import Approval
from cards.approval_card import buttons, progress, rules
from cards.limits import more_line
from cards.model import Button, Card, Field
from handlers.approval_forms import FEEDBACK, approve_form, changes_form, feedback_of, typed_values
from handlers.services import Services
from handlers.types import Click, Command, FieldErrors, Reply, Say, ShowForm, Submission
from handlers.workflow import check_may_steer

FINISHED = ("succeeded", "failed", "cancelled", "compensated")
BUTTONS_MAX = 25  # Slack's actions block (and Discord's five rows of five)


async def approval_button(click: Click, approval_id: str, choice: str, svc: Services) -> Reply:
    """Approve, Reject or Request changes on an approval card (or in the ``/approvals`` list)."""
    stored = await _read(svc, approval_id)
    row, who = stored.row, click.who
    if choice == "reject" or (choice == "approve" and row.kind != "form"):
        return await _decide(svc, who, stored, choice, where=_where(click))
    if choice == "approve":  # a form approval counts once its fields are filled in
        await _check(svc, who, stored, "approve")
        return ShowForm(approve_form(row.id, row.title, row.form))
    if choice == "changes":
        await _check(svc, who, stored, "changes")
        return ShowForm(changes_form(row.id, row.title, row.revision, row.max_revisions))
    raise BadInput(f"This approval button ({choice}) is not one Switchboard knows.")


async def approval_form(sub: Submission, target: str, svc: Services) -> Reply:
    """A submitted feedback form (request changes) or a form approval's fields."""
    approval_id, _, what = target.rpartition(".")
    stored = await _read(svc, approval_id)
    if stored.row.status != "pending":  # decided while the form was open: say so before any field error
        await _check(svc, sub.who, stored, "approve" if what == "approve" else "changes")
    if what == "changes":
        feedback, errors = feedback_of(sub.values)
        if errors:
            return FieldErrors(errors)
        return await _decide(svc, sub.who, stored, "changes", comment=feedback, where=_where(sub))
    if what == "approve":
        values, errors = typed_values(stored.row.form, sub.values)
        if errors:
            return FieldErrors(errors)
        return await _decide(svc, sub.who, stored, "approve", values=values, where=_where(sub))
    raise BadInput(f"This approval form ({what}) is not one Switchboard knows.")


async def approvals_command(cmd: Command, svc: Services) -> Reply:
    """``/approvals``: the pending requests this person may decide, each with its buttons."""
    word, _, rest = cmd.text.strip().partition(" ")
    if word == "expire":
        return await expire_command(cmd, rest.strip(), svc)
    mine = await _decidable(svc, cmd.who)
    fields: list[Field] = []
    shown: list[Button] = []
    gone = 0
    async with svc.runtime.approvals.engine.connect() as conn:
        for request in mine:  # read one by one, only as many as the card can hold buttons for
            stored = await read_view(conn, request.id, svc.now(), cmd.who.platform)
            if stored is None or stored.run.status in FINISHED:
                gone += 1  # its run ended while it waited
                continue
            view, n = stored.view, len(fields) + 1
            own = buttons(view)
            if len(shown) + len(own) > BUTTONS_MAX:
                break
            label = {"approve": f"Approve #{n}", "reject": f"Reject #{n}", "changes": f"Changes #{n}"}
            shown += [_relabel(b, label) for b in own]
            where = f"{view.workflow} · run {view.run_id[:6]} · step {view.step} · asked by {view.asked_by}"
            lines = [where, rules(view), *(progress(view) or ["No decisions yet."])]
            fields.append(Field(f"#{n} {view.title}", "\n".join(lines), short=False))
    if not fields:
        return Say("Nothing is waiting for your decision.")
    left = len(mine) - len(fields) - gone
    notes = ["Each button acts on the request with its number."]
    more = more_line(left, "request" if left == 1 else "requests")
    notes += [f"{more}: decide these first, then run /approvals again"] if left else []
    total = len(fields) + left
    title = f"{total} approval request{'s' if total != 1 else ''} waiting for you"
    return Say(card=Card(title=title, fields=tuple(fields), context=tuple(notes), buttons=tuple(shown)))


async def expire_command(cmd: Command, text: str, svc: Services) -> Reply:
    """``/approvals expire ID [why]``: withdraw a pending request, if ``who`` may cancel its run."""
    approval_id, _, reason = text.partition(" ")
    if not approval_id:
        raise BadInput("Which request? Usage: `/approvals expire ID [why]`")
    stored = await _read(svc, (await svc.runtime.approvals.get(approval_id)).id)  # a prefix will do
    run = stored.run
    check_may_steer(svc, run.workflow, run.started_by, "cancel", cmd.who, cmd.where)
    outcome = await svc.runtime.withdraw(
        stored.row.id, cmd.who.ref, reason.strip() or None, cmd.where.platform
    )
    return Say(outcome.message, ephemeral=True)


async def _decidable(svc: Services, who: Identity) -> list[Approval]:
    """Pending requests ``who`` may decide: an approver, not their own run (unless allowed), no vote yet."""
    store = svc.runtime.approvals
    candidates = [
        a
        for a in await store.pending()
        if (a.allow_self_approval or a.requested_by != who.ref)
        and (not a.approvers or any(matches(entry, who) for entry in a.approvers))
    ]
    if not candidates:
        return []
    done = await store.voted_on(who.ref, [a.id for a in candidates])
    return [a for a in candidates if a.id not in done]


def _relabel(button: Button, labels: dict[str, str]) -> Button:
    choice = button.action_id.rpartition(":")[2]
    return Button(labels.get(choice, button.label), button.action_id, button.style, button.confirm)


async def _read(svc: Services, approval_id: str) -> Request:
    """The request behind a button or a form (an exact id) and its run, in one query."""
    async with svc.runtime.approvals.engine.connect() as conn:
        stored = await read_request(conn, approval_id)
    if stored is None:
        raise NotFound(f"There is no approval request {approval_id}; /approvals lists those waiting for you.")
    return stored


def _still_open(stored: Request) -> None:
    """A request whose run has ended (cancelled while it waited) takes no more decisions."""
    closed_with_run = stored.row.status == "cancelled"  # closed because its run ended
    if (stored.row.status == "pending" or closed_with_run) and stored.run.status in FINISHED:
        raise Conflict(
            f"Run {stored.run.id} has ended ({stored.run.status}); this request no longer applies."
        )


async def _check(
    svc: Services, who: Identity, stored: Request, decision: str, source: str | None = None
) -> None:
    _still_open(stored)
    await svc.runtime.approvals.check(
        stored.row.id,
        who.ref,
        decision,
        groups=tuple(sorted(who.groups)),
        source=source or who.platform,
        aliases=(who.user_id, who.name),
        exact=True,
    )


async def _decide(
    svc: Services,
    who: Identity,
    stored: Request,
    decision: str,
    comment: str | None = None,
    values: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
) -> Say:
    """Record the decision through the runtime, which sends the cards and resumes a settled run."""
    return Say((await _record(svc, who, stored, decision, comment, values, where)).message)


async def _record(
    svc: Services,
    who: Identity,
    stored: Request,
    decision: str,
    comment: str | None,
    values: dict[str, Any] | None,
    where: dict[str, Any] | None,
    source: str | None = None,
) -> Outcome:
    _still_open(stored)
    with acting(who):  # the card redrawn inside the decision names this person
        outcome = await svc.runtime.decide(
            stored.row.id,
            who.ref,
            decision,
            comment,
            groups=tuple(sorted(who.groups)),
            source=source or who.platform,
            values=values,
            aliases=(who.user_id, who.name),
            name=f"@{who.name}",
            where=where,
            exact=True,  # the id was just read: no second look-up by prefix
        )
    return outcome


class FieldsRefused(BadInput):
    """A decision sent without the fields its form needs (or with bad ones): ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        listed = "; ".join(f"{name}: {why}" for name, why in errors.items())
        super().__init__(f"Nothing was decided. Fix these fields: {listed}")
        self.errors = errors


async def decidable(svc: Services, who: Identity) -> list[Approval]:
    """The pending requests ``who`` may decide, as ``/approvals`` lists them."""
    return await _decidable(svc, who)


async def decide_request(
    svc: Services,
    who: Identity,
    approval_id: str,
    decision: str,
    comment: str | None = None,
    fields: dict[str, str] | None = None,
    source: str = "api",
    where: dict[str, Any] | None = None,
) -> Outcome:
    """A decision sent whole, not through a card (the REST API): a form approval's ``fields`` and a request
    for changes' feedback (``comment``) are checked as the card's forms check them, then the same
    compare-and-set records it, audited with ``source``."""
    stored = await _read(svc, approval_id)
    values: dict[str, Any] | None = None
    if decision == "changes":
        await _check(svc, who, stored, "changes", source)
        comment, errors = feedback_of({FEEDBACK: comment or ""})
        if errors:
            raise FieldsRefused(errors)
    elif decision == "approve" and stored.row.kind == "form":
        await _check(svc, who, stored, "approve", source)
        values, errors = typed_values(stored.row.form, fields or {})
        if errors:
            raise FieldsRefused(errors)
    return await _record(svc, who, stored, decision, comment, values, where, source=source)


def _where(event: Click | Submission) -> dict[str, Any]:
    """The audit's "where": the platform, the channel and the message that was clicked."""
    message = event.message if isinstance(event, Click) else None
    return {"platform": event.where.platform, "channel": event.where.channel, "message": message}
