"""Conversation cards: assistant replies, relayed agent messages, the handover card and the queue view.

``HandoverView`` is plain data read from storage; the functions here turn it into platform-neutral cards.
A queued conversation's card offers Claim and Transfer; a claimed one Resolve, Back to AI, Release and
Transfer; a closed one no buttons. No I/O: the clock's reading arrives as ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cards.approval_card import hhmm, span
from cards.limits import clip
from cards.model import Button, Card, Colour, Confirm, Field, action_id

SUMMARY_MAX = 900


def human_button(conversation_id: str) -> Button:
    """ "Talk to a human": on every assistant reply, and it works with no LLM configured."""
    return Button("Talk to a human", action_id("conv", conversation_id, "human"))


def assistant_reply(conversation_id: str, text: str, human: bool = True) -> Card:
    """An assistant message to the user, with the "Talk to a human" button (unless the place turns
    hand-over on request off)."""
    buttons = (human_button(conversation_id),) if human else ()
    return Card(title="", text=text, buttons=buttons, fallback=text)


# Choices are words: Discord's persistent buttons match choices of letters and underscores only.
RATINGS = {f"rate_{word}": n for n, word in enumerate(("one", "two", "three", "four", "five"), start=1)}


def rating_card(conversation_id: str) -> Card:
    """After a conversation is resolved: 1 to 5 buttons for the user (``sb:conv:<id>:rate_four``)."""
    text = "How did we do? Rate this conversation from 1 (poor) to 5 (great)."
    buttons = tuple(Button(str(n), action_id("conv", conversation_id, c)) for c, n in RATINGS.items())
    return Card(title="", text=text, buttons=buttons, fallback=text)


def notice(text: str, colour: Colour = "info") -> Card:
    """A message from Switchboard itself (the queue position, a handover, a warning)."""
    return Card(title="", text=text, colour=colour, fallback=text)


def relayed(author: str, text: str, role: str) -> Card:
    """A message passed on between the user and an agent, under its author's name."""
    line = f"{author} ({role}): {text}"
    return Card(title="", text=text, context=(f"{author} · {role}",), fallback=line)


@dataclass(frozen=True)
class HandoverView:
    """What the agents' card shows about one conversation."""

    id: str
    user: str
    platform: str
    state: str  # the State's value
    reason: str
    priority: str
    skills: tuple[str, ...] = ()
    summary: str | None = None
    tried: str | None = None
    suggested: str | None = None
    queued_at: float | None = None
    agent: str | None = None
    offered_to: str | None = None
    resolution: str | None = None
    escalated: bool = False


STATUS = {
    "PENDING_HUMAN": ("waiting for an agent", "warning"),
    "HUMAN_ACTIVE": ("claimed", "info"),
    "RESOLVED": ("resolved", "success"),
    "BACK_TO_AI": ("back with the assistant", "neutral"),
    "AI_PROCESSING": ("back with the assistant", "neutral"),
    "FINISHED": ("finished", "success"),
}


def handover_card(view: HandoverView, now: float) -> Card:
    """The card in the agents' channel, drawn for the conversation's current state."""
    status, colour = STATUS.get(view.state, (view.state.lower(), "neutral"))
    if view.state == "HUMAN_ACTIVE" and view.agent:
        status = f"claimed by {view.agent}"
    fields = [
        Field("User", view.user),
        Field("Reason", view.reason),
        Field("Priority", view.priority),
        Field("Skills", ", ".join(view.skills) or "any"),
    ]
    if view.queued_at is not None and view.state == "PENDING_HUMAN":
        fields.append(
            Field("Waiting", f"since {hhmm(view.queued_at)} ({span(max(now - view.queued_at, 0))})")
        )
    if view.offered_to:
        fields.append(Field("Offered to", view.offered_to))
    if view.tried:
        fields.append(Field("Already tried", clip(view.tried, 1000), short=False))
    if view.suggested:
        fields.append(Field("Suggested first reply", clip(view.suggested, 1000), short=False))
    if view.resolution and view.state in ("RESOLVED", "FINISHED"):
        fields.append(Field("Resolution", clip(view.resolution, 1000), short=False))
    context = [f"conversation {view.id} · {view.platform}"]
    if view.escalated and view.state == "PENDING_HUMAN":
        context.append("escalated: nobody claimed it in time")
    text = (
        clip(view.summary, SUMMARY_MAX) if view.summary else "(no summary: the assistant did not take part)"
    )
    return Card(
        title=f"Handover: {view.user}",
        text=text,
        status=status,
        colour=colour,  # type: ignore[arg-type]
        fields=tuple(fields),
        context=tuple(context),
        buttons=_buttons(view),
        fallback=f"Handover: {view.user} ({status}) — {view.reason}",
    )


def _buttons(view: HandoverView) -> tuple[Button, ...]:
    target = view.id
    transfer = Button("Transfer", action_id("conv", target, "transfer"))
    if view.state == "PENDING_HUMAN":
        return (Button("Claim", action_id("conv", target, "claim"), "primary"), transfer)
    if view.state == "HUMAN_ACTIVE":
        resolve = Confirm("Resolve this conversation?", "The user is told it is resolved.", "Resolve")
        return (
            Button("Resolve", action_id("conv", target, "resolve"), "primary", resolve),
            Button("Back to AI", action_id("conv", target, "back")),
            Button("Release", action_id("conv", target, "release")),
            transfer,
        )
    return ()


@dataclass(frozen=True)
class AgentLine:
    name: str
    available: bool
    load: int
    capacity: int
    skills: tuple[str, ...]


def queue_card(waiting: Sequence[HandoverView], agents: Sequence[AgentLine], now: float) -> Card:
    """The live queue (in order) and each agent's load."""
    lines = []
    for i, view in enumerate(waiting, start=1):
        waited = span(max(now - (view.queued_at or now), 0))
        skills = f" [{', '.join(view.skills)}]" if view.skills else ""
        lines.append(
            f"{i}. {view.user} — {view.reason}, {view.priority}{skills}, waiting {waited} ({view.id})"
        )
    people = [
        Field(
            a.name,
            f"{'on' if a.available else 'off'} duty · {a.load}/{a.capacity}"
            + (f" · {', '.join(a.skills)}" if a.skills else ""),
        )
        for a in agents
    ]
    return Card(
        title="Queue",
        text="\n".join(lines) if lines else "Nobody is waiting.",
        status=f"{len(waiting)} waiting",
        colour="warning" if waiting else "success",
        fields=tuple(people),
        context=("/agent on|off sets your availability",),
    )
