"""The conversation state machine: which transitions exist, and who may speak in each state.

The state alone decides who talks to the user. The assistant speaks only while it owns the
conversation; a human agent only once they hold it; in the queue only Switchboard itself speaks.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "NEW"
    AI_PROCESSING = "AI_PROCESSING"
    FINISHED = "FINISHED"
    HANDOVER = "HANDOVER"
    PENDING_HUMAN = "PENDING_HUMAN"
    HUMAN_ACTIVE = "HUMAN_ACTIVE"
    RESOLVED = "RESOLVED"
    BACK_TO_AI = "BACK_TO_AI"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.NEW: frozenset({S.AI_PROCESSING, S.HANDOVER, S.FINISHED}),
    S.AI_PROCESSING: frozenset({S.FINISHED, S.HANDOVER}),
    S.HANDOVER: frozenset({S.PENDING_HUMAN}),
    S.PENDING_HUMAN: frozenset({S.HUMAN_ACTIVE, S.PENDING_HUMAN, S.RESOLVED}),
    S.HUMAN_ACTIVE: frozenset({S.RESOLVED, S.BACK_TO_AI, S.PENDING_HUMAN}),
    S.BACK_TO_AI: frozenset({S.AI_PROCESSING, S.HANDOVER, S.FINISHED}),
    S.FINISHED: frozenset(),
    S.RESOLVED: frozenset(),
}

AI_SPEAKS = frozenset({S.NEW, S.AI_PROCESSING, S.BACK_TO_AI})
CLOSED = frozenset({S.FINISHED, S.RESOLVED})
WITH_HUMANS = frozenset({S.HANDOVER, S.PENDING_HUMAN, S.HUMAN_ACTIVE})


def sources(target: State) -> frozenset[State]:
    """The states from which ``target`` can be reached."""
    return frozenset(s for s, nxt in TRANSITIONS.items() if target in nxt)


def can_move(current: State, target: State) -> bool:
    """Whether the machine allows ``current`` → ``target``."""
    return target in TRANSITIONS[current]


def describe(state: State) -> str:
    """How a card or a reply names the state."""
    return {
        S.NEW: "new",
        S.AI_PROCESSING: "with the assistant",
        S.FINISHED: "finished by the assistant",
        S.HANDOVER: "being handed over",
        S.PENDING_HUMAN: "waiting for an agent",
        S.HUMAN_ACTIVE: "with an agent",
        S.RESOLVED: "resolved",
        S.BACK_TO_AI: "back with the assistant",
    }[state]
