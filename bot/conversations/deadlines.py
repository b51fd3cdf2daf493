"""A conversation's deadlines, computed from its row: re-ping and escalate the queue, chase a silent agent,
warn and close for a silent user. Pure: the service keeps one timer per conversation at ``next_at``.

Every change that can bring a deadline forward (a transition, a message) asks for the timer at the new
``next_at``; a timer that rings early (activity moved its deadline later) finds nothing due and the
tick arms the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.storage.conversations.rows import Conversation
from bot.storage.conversations.states import AI_SPEAKS, State

MAX_PINGS = 3


@dataclass(frozen=True)
class Policy:
    """Seconds before each deadline (the defaults are documented in the README)."""

    reping: float = 120.0  # unclaimed: mention the agents again, every this long (up to 3 times)
    escalate: float = 300.0  # unclaimed: post to the fallback channel
    agent_remind: float = 300.0  # the user waits on the agent: remind the agent
    agent_offer: float = 600.0  # still waiting: put the conversation back in the queue for others
    user_warn: float = 1800.0  # the user has not answered: warn them
    user_close: float = 3600.0  # still nothing: resolve it


def _deadlines(conv: Conversation, policy: Policy) -> list[tuple[str, float]]:
    found: list[tuple[str, float]] = []
    if conv.state == State.PENDING_HUMAN and conv.queued_at is not None:
        if conv.pings < MAX_PINGS:
            found.append(("reping", conv.queued_at + policy.reping * (conv.pings + 1)))
        if not conv.escalated:
            found.append(("escalate", conv.queued_at + policy.escalate))
    if conv.state == State.HUMAN_ACTIVE:
        answered = max(conv.last_agent_at or 0.0, conv.claimed_at or 0.0)
        if conv.last_user_at is not None and conv.last_user_at > answered:
            if not conv.reminded:
                found.append(("remind_agent", conv.last_user_at + policy.agent_remind))
            found.append(("offer", conv.last_user_at + policy.agent_offer))
        spoke = conv.last_agent_at
        if spoke is not None and spoke >= (conv.last_user_at or 0.0):
            if not conv.warned:
                found.append(("warn_user", spoke + policy.user_warn))
            found.append(("close", spoke + policy.user_close))
    if conv.state in AI_SPEAKS:
        found.append(("close", max(conv.last_user_at or 0.0, conv.last_bot_at or 0.0) + policy.user_close))
    return found


def due(conv: Conversation, now: float, policy: Policy) -> list[str]:
    """The deadlines that have passed, in the order they fell due."""
    return [kind for kind, at in sorted(_deadlines(conv, policy), key=lambda d: d[1]) if at <= now]


def next_at(conv: Conversation, policy: Policy) -> float | None:
    """When the earliest deadline falls (None: the conversation has none)."""
    times = [at for _kind, at in _deadlines(conv, policy)]
    return min(times) if times else None
