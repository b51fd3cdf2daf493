"""The card of an approval request: what is asked, by whom, the rules, the votes so far and the buttons.

``ApprovalView`` is plain data the chat layer reads from storage (names already turned into what a reader
should see, "@alice"); ``approval_card`` turns it into a platform-neutral ``Card``. A pending request has
Approve / Reject / Request changes; a decided one shows its outcome and no buttons, so a stale card cannot
be clicked by mistake. No I/O: the clock's reading arrives as ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cards.limits import clip
from cards.model import Button, Card, Colour, Confirm, Field, action_id

COMMENT_MAX = 300
STATUS_TEXT = {
    "pending": "waiting for approval",
    "approved": "approved",
    "rejected": "rejected",
    "changes": "changes requested",
    "expired": "expired",
    "cancelled": "cancelled",
}
COLOURS: dict[str, Colour] = {
    "pending": "warning",
    "approved": "success",
    "rejected": "danger",
    "changes": "info",
    "expired": "danger",
    "cancelled": "neutral",
}
ON_TIMEOUT = {
    "reject": "then it is rejected",
    "approve": "then it is approved",
    "cancel": "then the run stops",
}


@dataclass(frozen=True)
class Vote:
    """One person's decision: approve, reject or changes (with the feedback as ``comment``)."""

    who: str
    decision: str
    comment: str | None = None


@dataclass(frozen=True)
class ApprovalView:
    """What the card needs to know about one approval request."""

    approval_id: str
    run_id: str
    workflow: str
    step: str
    title: str
    asked_by: str
    status: str = "pending"  # pending | approved | rejected | changes | expired | cancelled
    description: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    kind: str = "binary"  # binary | form | budget
    form_fields: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    approvers_shown: tuple[str, ...] = ()  # the approvers as the card names them (mentions)
    required: int = 1
    veto: bool = True
    allow_self_approval: bool = False
    expires_at: float | None = None
    on_timeout: str = "reject"
    revision: int = 1
    request: int = 1  # the step's n-th ask: more than its revision when a retry of the run asked again
    max_revisions: int = 3
    can_revise: bool = False
    previous_feedback: Vote | None = None  # the request for changes that led to this revision
    votes: tuple[Vote, ...] = ()
    decided_at: float | None = None
    auto_reason: str | None = None
    auto_at: float | None = None  # auto_approve_after: approved then unless someone objects
    note: str | None = None  # e.g. why a DM went to the channel instead
    now: float = 0.0

    @property
    def pending(self) -> bool:
        """Whether the request still takes decisions."""
        return self.status == "pending"

    def by(self, decision: str) -> list[str]:
        """Who voted ``decision``, in the order they did."""
        return [v.who for v in self.votes if v.decision == decision]


def hhmm(moment: float) -> str:
    """A moment as "14:02 UTC"."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M UTC")


def span(seconds: float) -> str:
    """A coarse duration for a deadline: "4h", "2h 30m", "45m", "2d 3h", "under a minute"."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "under a minute"
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


def names(people: list[str]) -> str:
    """People joined for a sentence: "@a", "@a and @b", "@a, @b and @c"."""
    if len(people) <= 1:
        return "".join(people)
    return f"{', '.join(people[:-1])} and {people[-1]}"


def _quoted(text: str | None) -> str:
    return f": “{clip(' '.join(text.split()), COMMENT_MAX)}”" if text and text.strip() else ""


def rules(view: ApprovalView) -> str:
    """The rules line: "2 of group:release-managers, user:U024 · expires 18:02 UTC (in 4h) · …"."""
    named = view.approvers_shown or view.approvers
    who = ", ".join(named) if named else "anyone"
    parts = [f"{view.required} of {who}"]
    if not view.veto:
        parts.append(f"{view.required} rejects end it")
    if view.pending and view.expires_at is not None:
        when = f"expires {hhmm(view.expires_at)} (in {span(view.expires_at - view.now)})"
        parts.append(f"{when}, {ON_TIMEOUT.get(view.on_timeout, view.on_timeout)}")
    if view.pending and view.auto_at is not None:
        parts.append(
            f"approved {hhmm(view.auto_at)} (in {span(view.auto_at - view.now)}) unless someone objects"
        )
    if view.revision > 1:
        parts.append(f"revision {view.revision} of {view.max_revisions}")
    if view.request > view.revision:
        parts.append(f"request {view.request}")  # asked again by a retry, not a revision
    if not view.allow_self_approval:
        parts.append("no self-approval")
    return " · ".join(parts)


def progress(view: ApprovalView) -> list[str]:
    """Lines about the votes of a pending request."""
    lines = []
    approved, rejected = view.by("approve"), view.by("reject")
    if approved:
        lines.append(f"Approved by {names(approved)}, {len(approved)} of {view.required}")
    if rejected:
        lines.append(f"Rejected by {names(rejected)}, {len(rejected)} of {view.required} rejects end it")
    lines += [f"{v.who} asked for changes{_quoted(v.comment)}" for v in view.votes if v.decision == "changes"]
    return lines


def outcome(view: ApprovalView) -> str:
    """The final line of a decided request: "Approved by @alice and @bob at 14:02 UTC"."""
    at = f" at {hhmm(view.decided_at)}" if view.decided_at is not None else ""
    if view.status == "approved":
        if view.auto_reason:
            return f"Approved automatically{at}: {view.auto_reason}"
        return f"Approved by {names(view.by('approve')) or 'the deadline rule'}{at}"
    if view.status == "rejected":
        last = next((v for v in reversed(view.votes) if v.decision == "reject"), None)
        who = names(view.by("reject")) or "nobody"
        return f"Rejected by {who}{at}{_quoted(last.comment if last else None)}"
    if view.status == "changes":
        asked = next((v for v in reversed(view.votes) if v.decision == "changes"), None)
        who, comment = (asked.who, asked.comment) if asked else ("someone", None)
        line = f"Changes requested by {who}{at}{_quoted(comment)}"
        if view.revision >= view.max_revisions:
            return f"{line}. This was the last revision ({view.max_revisions}), so it counts as a reject."
        return f"{line}. The work goes back for revision {view.revision + 1}."
    if view.status == "expired":
        return f"Expired{at} with no decision; {ON_TIMEOUT.get(view.on_timeout, view.on_timeout)}."
    return "Closed: the run ended before a decision."


def _text(view: ApprovalView) -> str:
    parts = [view.description.strip()] if view.description and view.description.strip() else []
    if view.revision > 1 and view.previous_feedback is not None:
        feedback = view.previous_feedback
        parts.append(f"Revised after {feedback.who} asked for changes{_quoted(feedback.comment)}")
    if view.pending:
        parts += progress(view)
        if view.kind == "form" and view.form_fields:
            parts.append(f"Approving asks for details: {', '.join(view.form_fields)}.")
        if view.can_revise and view.revision >= view.max_revisions:
            parts.append("This is the last revision: a request for changes now counts as a reject.")
    else:
        parts.append(outcome(view))
    return "\n".join(parts)


def _fields(view: ApprovalView) -> tuple[Field, ...]:
    context = dict(view.context)
    # A budget request is about its amount: put it first, whatever order the context was written in.
    first = [Field("Amount", context.pop("Amount"))] if view.kind == "budget" and "Amount" in context else []
    rest = [Field(label, value or "—", short=len(value) <= 40) for label, value in context.items()]
    return (*first, *rest, Field("Asked by", view.asked_by))


def buttons(view: ApprovalView) -> tuple[Button, ...]:
    """Approve, Reject (confirmed) and, when the step can be revised, Request changes."""
    if not view.pending:
        return ()
    target = view.approval_id
    approve = "Approve…" if view.kind == "form" else "Approve"
    why = (
        "One reject ends the request; the run follows its failure path."
        if view.veto
        else f"Your reject counts toward the {view.required} that end the request."
    )
    ask = Confirm("Reject this request?", clip(f"{view.title}\n{why}", 300), "Reject", "Back")
    out = [
        Button(approve, action_id("approval", target, "approve"), "primary"),
        Button("Reject", action_id("approval", target, "reject"), "danger", ask),
    ]
    if view.can_revise:
        out.append(Button("Request changes…", action_id("approval", target, "changes")))
    return tuple(out)


def approval_card(view: ApprovalView) -> Card:
    """The card of one approval request, pending (with buttons) or decided (with its outcome)."""
    where = f"{view.workflow} · run {view.run_id[:6]} · step {view.step}"
    notes = (where, rules(view), f"approval {view.approval_id}", *([view.note] if view.note else ()))
    fallback = f"Approval needed: {view.title}" if view.pending else f"{view.title}: {outcome(view)}"
    return Card(
        title=view.title,
        text=_text(view),
        status=STATUS_TEXT.get(view.status, view.status),
        colour=COLOURS.get(view.status, "neutral"),
        fields=_fields(view),
        context=notes,
        buttons=buttons(view),
        fallback=clip(fallback, 500),
    )
