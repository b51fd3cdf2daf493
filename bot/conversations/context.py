"""What the model sees in a turn: instructions, what it remembers, a rolling summary, and the latest
messages that fit a token budget. Pure: the service reads the rows and passes them in.

Tokens are estimated at four characters each, which is close for English text and needs no tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.storage.conversations.rows import Conversation, Message

CHARS_PER_TOKEN = 4
SUMMARY_AFTER = 30  # unsummarized messages before the summary is refreshed in the background

INSTRUCTIONS = """You are Switchboard's assistant in a team chat. Be brief and concrete.
You can list and run the workflows this user may run, and check a run's status.
When something needs a person's sign-off, call request_approval with the approvers and a summary.
Call handover_to_human when the user asks for a person, when you cannot help, or when a request needs
someone with more access; fill in a summary a human agent can act on, and your confidence (0-1) that
you could still resolve it yourself. Call finish when the user's
request is resolved. Remember facts that matter later (for example the service) with remember."""


def tokens(text: str) -> int:
    """An estimate of ``text``'s tokens."""
    return len(text) // CHARS_PER_TOKEN + 1


def build(
    conv: Conversation,
    history: Sequence[Message],
    memory: dict[str, str],
    budget: int,
) -> list[dict[str, Any]]:
    """The chat messages for a turn: newest history first into the budget, then put back in order."""
    system = [INSTRUCTIONS, f"You are talking with {conv.user.name} on {conv.platform}."]
    if memory:
        system.append("What you remember: " + "; ".join(f"{k}: {v}" for k, v in sorted(memory.items())))
    if conv.memory_summary:
        system.append("Summary of the earlier conversation: " + conv.memory_summary)
    if conv.note:
        system.append(f"A human agent ({conv.agent_name or 'an agent'}) handed this back to you: {conv.note}")
    head = {"role": "system", "content": "\n\n".join(system)}
    room = budget - tokens(head["content"])
    picked: list[dict[str, Any]] = []
    for msg in reversed(history):
        if msg.id <= conv.summarized_through:
            break
        item = as_chat(msg)
        if item is None:
            continue
        cost = tokens(item["content"])
        if cost > room and picked:
            break
        room -= cost
        picked.append(item)
    return [head, *reversed(picked)]


def as_chat(msg: Message) -> dict[str, Any] | None:
    """A stored message as the model sees it (internal notes and Switchboard's own notices are left out)."""
    if msg.role == "user":
        return {"role": "user", "content": msg.text}
    if msg.role == "assistant":
        return {"role": "assistant", "content": msg.text}
    if msg.role == "agent":
        return {"role": "assistant", "content": f"(human agent {msg.author_name or ''}) {msg.text}"}
    return None


def needs_summary(conv: Conversation, history: Sequence[Message]) -> bool:
    """Whether enough has been said since the last summary to write a new one."""
    return sum(1 for m in history if m.id > conv.summarized_through) > SUMMARY_AFTER


def transcript(conv: Conversation, history: Sequence[Message], when: Any) -> str:
    """A plain-text transcript: one line per message, with time and author (notes marked as such)."""
    lines = [f"Conversation {conv.id} with {conv.user.name} ({conv.platform})"]
    for msg in history:
        who = {
            "user": conv.user.name,
            "assistant": "Assistant",
            "agent": f"{msg.author_name} (agent)",
            "note": f"{msg.author_name} (internal note)",
            "system": "Switchboard",
        }.get(msg.role, msg.role)
        lines.append(f"[{when(msg.at)}] {who}: {msg.text}")
    return "\n".join(lines)
