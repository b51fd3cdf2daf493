"""Typed views of the stored rows: a conversation, a message, an agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.identity import Identity
from bot.storage.conversations.states import State

PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Inbound:
    """A message someone wrote to the bot, parsed once by the platform adapter.

    ``thread`` is the message the bot answers under (a mention's own message, or the thread it is in);
    in a direct message it is None and the bot answers in the DM itself.
    """

    who: Identity
    platform: str
    channel: str
    text: str
    thread: str | None = None
    event_key: str | None = None  # the platform's delivery id: a retried delivery is one message
    direct: bool = False

    @property
    def place_key(self) -> str:
        """One open conversation per DM, or per thread in a channel."""
        if self.thread is None:
            return f"{self.platform}:{self.channel}"
        return f"{self.platform}:{self.channel}:{self.thread}"


@dataclass(frozen=True)
class Conversation:
    id: str
    platform: str
    channel: str
    thread: str | None
    user: Identity
    state: State
    priority: int
    skills: tuple[str, ...]
    reason: str | None
    summary: str | None
    tried: str | None
    suggested: str | None
    agent_ref: str | None
    agent_name: str | None
    offered_to: str | None
    turns: int
    failures: int
    pings: int
    escalated: bool
    reminded: bool
    warned: bool
    note: str | None
    resolution: str | None
    memory_summary: str | None
    summarized_through: int
    created_at: float
    queued_at: float | None
    claimed_at: float | None
    first_human_at: float | None
    closed_at: float | None
    last_user_at: float | None
    last_agent_at: float | None
    last_bot_at: float | None
    workflow: str | None = None
    rating: int | None = None
    rated_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ai_seconds: float = 0.0

    @property
    def card_key(self) -> str:
        """The key of its handover card in the agents' channel (a ``chat_cards`` row)."""
        return f"conversation:{self.id}"

    @property
    def priority_name(self) -> str:
        return PRIORITIES[max(0, min(self.priority, len(PRIORITIES) - 1))]

    @classmethod
    def from_row(cls, row: Any) -> Conversation:
        """The conversation a ``conversations`` row holds."""
        return cls(
            id=row.id,
            platform=row.platform,
            channel=row.channel,
            thread=row.thread,
            user=Identity.from_dict(row.user),
            state=State(row.state),
            priority=row.priority,
            skills=tuple(row.skills or ()),
            reason=row.reason,
            summary=row.summary,
            tried=row.tried,
            suggested=row.suggested,
            agent_ref=row.agent_ref,
            agent_name=row.agent_name,
            offered_to=row.offered_to,
            turns=row.turns,
            failures=row.failures,
            pings=row.pings,
            escalated=bool(row.escalated),
            reminded=bool(row.reminded),
            warned=bool(row.warned),
            note=row.note,
            resolution=row.resolution,
            memory_summary=row.memory_summary,
            summarized_through=row.summarized_through,
            created_at=row.created_at,
            queued_at=row.queued_at,
            claimed_at=row.claimed_at,
            first_human_at=row.first_human_at,
            closed_at=row.closed_at,
            last_user_at=row.last_user_at,
            last_agent_at=row.last_agent_at,
            last_bot_at=row.last_bot_at,
            workflow=row.workflow,
            rating=row.rating,
            rated_at=row.rated_at,
            prompt_tokens=row.prompt_tokens or 0,
            completion_tokens=row.completion_tokens or 0,
            ai_seconds=row.ai_seconds or 0.0,
        )


@dataclass(frozen=True)
class Message:
    id: int
    at: float
    role: str  # user | assistant | agent | note | system | tool
    author_name: str | None
    text: str


@dataclass(frozen=True)
class Agent:
    ref: str
    platform: str
    name: str
    available: bool
    skills: tuple[str, ...]
    capacity: int
    idle_since: float
    load: int = 0  # conversations they hold now


def priority_of(name: str | int | None) -> int:
    """A priority's number from its name (or number); unknown names are "normal"."""
    if isinstance(name, int):
        return max(0, min(name, len(PRIORITIES) - 1))
    text = (name or "normal").strip().lower()
    return PRIORITIES.index(text) if text in PRIORITIES else 1
