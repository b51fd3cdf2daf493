"""The approval rules, pure: who may vote, when a vote settles a request, what the run is told."""

from __future__ import annotations

from typing import Any

OUTCOME_ON_TIMEOUT = {"reject": "rejected", "approve": "approved", "cancel": "cancel"}
DECISIONS = ("approve", "reject", "changes")
OUTCOMES = {"approved": "approved", "rejected": "rejected", "changes": "changes_requested"}
VERBS = {"approved": "Approved", "rejected": "Rejected", "changes": "Changes requested"}


def settles(row: Any, decision: str, approved: int, rejected: int) -> str | None:
    """The request's final state after a vote, or None while it still waits."""
    if decision == "changes":
        return "changes"
    if decision == "reject" and (row.veto or rejected >= row.required):
        return "rejected"  # veto: one reject ends it; otherwise rejects count like approvals
    return "approved" if approved >= row.required else None


def refusal(
    row: Any, actor: str, groups: tuple[str, ...], started_by: str, aliases: tuple[str, ...] = ()
) -> str | None:
    """Why ``actor`` may not vote on this request (self-approval, not an approver), or None."""
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


def tally(row: Any, decision: str, shown: str, approved: int, rejected: int) -> str:
    """What the voter reads when their vote counts but the request still waits."""
    if decision == "approve":
        return f"Approved by {shown}, {approved} of {row.required}"
    return f"Rejected by {shown}, {rejected} of {row.required} rejections end it"


def decision_payload(
    row: Any,
    final: str,
    actor: str,
    shown: str,
    comment: str | None,
    approved: list[str],
    rejected: list[str],
    values: dict[str, Any],
) -> dict[str, Any]:
    """The signal a settled request sends its run: the step's outcome and the approval's outputs."""
    outcome = OUTCOMES[final]
    return {
        "key": row.step_key,
        "outcome": outcome,
        "reason": comment or f"{outcome} by {shown}",
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


def waiting_on(approvers: list[str], voted: set[str]) -> list[str]:
    """The approvers who have not voted yet."""
    # Voters are refs ("console:alice", "slack:U024"); approvers name the part after the colon.
    seen = voted | {v.partition(":")[2] for v in voted}
    return [a for a in approvers if a.removeprefix("user:") not in seen]
