"""The assistant's ``request_approval`` tool: a run of a one-step approval workflow built in memory.

Going through a run gives the request everything a workflow's approval step has: its card and buttons on
every platform, M-of-N, veto, no self-approval (the run is started by the conversation's user), timeouts,
``auto_approve_after``, escalation and the audit. The decision reaches the conversation in the run's own
commit (an observer adds the rows to the run's batch), so it is told exactly once, across restarts.

The title and summary are the run's inputs, so chat text is only ever data to the expressions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bot.conversations.tools import RequestApproval
from bot.storage.cards import post_insert, post_row
from bot.storage.conversations.tables import conversation_memory, conversation_messages
from bot.storage.journal import Batch
from cards.conversation_card import notice
from engine.loader import LoadedWorkflow, load_text
from engine.state import RunState

if TYPE_CHECKING:
    from bot.conversations.service import Conversations
    from bot.storage.conversations.rows import Conversation

WORKFLOW = "assistant-approval"
STEP = "decision"
# The run's meta key naming the conversation; not "conversation", whose failed runs hand it over (runs.py).
META = "asked_for"
MEMORY_DAYS = 7.0  # how long the assistant remembers a decision


def approval_workflow(args: RequestApproval) -> LoadedWorkflow:
    """The one-step workflow that asks for ``args``' approval (JSON is YAML, so no quoting rules apply)."""
    approval: dict[str, Any] = {
        "title": "${{ inputs.title }}",
        "description": "${{ inputs.summary }}",
        "approvers": args.approvers,
        "required": args.required,
        "veto": True,
        # A user approver is asked in a DM where the platform has them; a group in the conversation's place.
        "notify": "dm",
    }
    if args.timeout_minutes is not None:
        approval["timeout"] = f"{args.timeout_minutes}m"
    if args.auto_approve_after_minutes is not None:
        approval["auto_approve_after"] = f"{args.auto_approve_after_minutes}m"
    spec = {
        "name": WORKFLOW,
        "description": "An approval the assistant asked for in a conversation",
        "inputs": {
            "title": {"type": "string", "required": True},
            "summary": {"type": "string", "default": ""},
        },
        "steps": {STEP: {"approval": approval}},
    }
    return load_text(json.dumps(spec, indent=2), f"<{WORKFLOW}>")


async def request_approval(service: Conversations, conv: Conversation, args: RequestApproval) -> str:
    """Start the approval run as the conversation's user; the text tells the model what happens next."""
    loaded = approval_workflow(args)
    where = {"platform": conv.platform, "channel": conv.channel, "thread": conv.thread}
    meta = {"origin": where, "who": conv.user.to_dict(), META: conv.id}
    started = await service.runtime.submit(
        loaded, {"title": args.subject, "summary": args.summary}, started_by=conv.user.ref, meta=meta
    )
    asked = ", ".join(args.approvers)
    return (
        f"Asked {asked} to approve '{args.subject}' (run {started.run_id}). The user cannot approve it "
        "themselves. The decision will be posted in this conversation; tell the user it is waiting."
    )


def watch_approvals(service: Conversations) -> None:
    """Tell a conversation the outcome of the approval it asked for, in the commit that settles it."""

    def observe(batch: Batch, state: RunState, rows: list[dict[str, Any]], now: float) -> None:
        conv_id = state.meta.get(META)
        if not conv_id or not any(r.get("type") == "run_finished" for r in rows):
            return
        origin = state.meta.get("origin") or {}
        text = outcome_text(state)
        batch.add(
            conversation_messages.insert(),
            {
                "conversation_id": conv_id,
                "at": now,
                "role": "system",
                "author_name": "Switchboard",
                "text": text,
            },
        )
        batch.add(
            conversation_memory.insert(),
            {
                "conversation_id": conv_id,
                "key": f"approval {state.run_id}",
                "value": text,
                "updated_at": now,
                "expires_at": now + MEMORY_DAYS * 86_400,
            },
        )
        if origin.get("platform") and origin.get("channel"):
            card = notice(text, "success" if text.startswith("✅") else "warning")
            row = post_row(origin["platform"], origin["channel"], None, card, now, origin.get("thread"))
            batch.add(post_insert(), row)  # the runtime's after-commit hook wakes the sender

    service.runtime.observers.append(observe)


def outcome_text(state: RunState) -> str:
    """ "✅ Approved by @bob: …" or why it was not approved, from the finished run's one step."""
    step = state.steps.get(STEP)
    title = state.inputs.get("title", "the request")
    outputs = step.outputs if step is not None and isinstance(step.outputs, dict) else {}
    if step is not None and str(step.status) == "succeeded" and outputs.get("auto"):
        return f"✅ Approved automatically, as nobody objected in time: {title}"
    if step is not None and str(step.status) == "succeeded":
        names = outputs.get("approver_names") or outputs.get("approvers") or []
        who = ", ".join(map(str, names)) or "the approval rules"
        comment = f" ({outputs['comment']})" if outputs.get("comment") else ""
        return f"✅ Approved by {who}: {title}{comment}"
    why = (step.error if step is not None else None) or state.error or str(state.status)
    return f"❌ Not approved: {title}: {why}"
