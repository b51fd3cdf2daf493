"""Who gets a conversation, and how long the user will wait: pure functions over agents and the queue."""

from __future__ import annotations

from collections.abc import Sequence

from bot.storage.conversations.rows import Agent, Conversation

DEFAULT_HANDLE = 300.0  # seconds a conversation takes when there is no history to go by


def qualified(agent: Agent, skills: Sequence[str]) -> bool:
    """Whether ``agent`` has every skill asked for (no skills asked: anyone)."""
    have = {s.lower() for s in agent.skills}
    return all(s.lower() in have for s in skills)


def pick_agent(agents: Sequence[Agent], skills: Sequence[str], offered_to: str | None = None) -> Agent | None:
    """Auto-assign: the least-loaded available agent with the skills and room; ties go to the longest idle."""
    free = [
        a
        for a in agents
        if a.available and a.load < a.capacity and qualified(a, skills) and offered_to in (None, a.ref)
    ]
    if not free:
        return None
    return min(free, key=lambda a: (a.load, a.idle_since, a.ref))


def queue_order(pending: Sequence[Conversation]) -> list[Conversation]:
    """The queue: higher priority first, then whoever has waited longest."""
    return sorted(pending, key=lambda c: (-c.priority, c.queued_at or 0.0, c.id))


def position(pending: Sequence[Conversation], conversation_id: str) -> int:
    """1-based place of a conversation in the queue (0 when it is not queued)."""
    for i, conv in enumerate(queue_order(pending), start=1):
        if conv.id == conversation_id:
            return i
    return 0


def estimated_wait(place: int, agents: Sequence[Agent], handle_time: float | None) -> float | None:
    """Seconds until an agent is likely free for the conversation at ``place``; None with nobody on duty.

    Free seats are taken at once; beyond them, each seat frees up once per average handle time.
    """
    on_duty = [a for a in agents if a.available]
    if not on_duty:
        return None
    free = sum(max(a.capacity - a.load, 0) for a in on_duty)
    if place <= free:
        return 0.0
    seats = sum(a.capacity for a in on_duty) or 1
    rounds = -(-(place - free) // seats)  # ceiling division
    return rounds * (handle_time or DEFAULT_HANDLE)


def describe_wait(seconds: float | None) -> str:
    """ "about 5 minutes", "an agent should be with you shortly", or why there is no estimate."""
    if seconds is None:
        return "no agent is on duty right now, so there is no estimate yet"
    if seconds < 60:
        return "an agent should be with you shortly"
    minutes = round(seconds / 60)
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"
