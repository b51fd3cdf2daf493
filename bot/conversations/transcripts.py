"""Transcripts and the analytics ``switchboard conversations stats`` reports."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.conversations import context
from bot.runtime.costs import Prices, RunsUsage, runs_usage
from bot.storage.conversations.rows import Conversation
from bot.storage.conversations.states import State
from bot.storage.conversations.store import ConversationStore
from bot.storage.runs import RunStore
from cards.approval_card import hhmm

if TYPE_CHECKING:
    from bot.conversations.service import Conversations


async def transcript_of(service: Conversations, conv: Conversation) -> str:
    """The stored transcript of a resolved conversation, or the one so far."""
    stored = await service.store.transcript(conv.id)
    return stored or context.transcript(conv, await service.store.messages(conv.id), hhmm)


@dataclass
class Stats:
    total: int = 0
    closed: int = 0
    by_ai: int = 0  # finished by the assistant without a handover
    handed_over: int = 0
    waits: list[float] = field(default_factory=list)  # queued → claimed
    handles: list[float] = field(default_factory=list)  # claimed → resolved
    first_responses: list[float] = field(default_factory=list)  # queued → first human reply
    agents: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (holding now, handled)
    ratings: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ai_seconds: float = 0.0  # in assistant turns
    with_ai: int = 0  # conversations the assistant took a turn in
    runs: RunsUsage = field(default_factory=RunsUsage)  # the workflow runs' llm steps
    prices: Prices = field(default_factory=Prices)

    def report(self) -> dict[str, object]:
        """The figures, as the CLI prints them."""
        return {
            "conversations": self.total,
            "closed": self.closed,
            "resolved_by_ai": _share(self.by_ai, self.closed),
            "handover_rate": _share(self.handed_over, self.total),
            "wait_p50_s": _pct(self.waits, 50),
            "wait_p90_s": _pct(self.waits, 90),
            "handle_p50_s": _pct(self.handles, 50),
            "first_response_p50_s": _pct(self.first_responses, 50),
            "satisfaction_avg": round(statistics.fmean(self.ratings), 2) if self.ratings else None,
            "ratings": len(self.ratings),
            "ai_time_s": round(self.ai_seconds, 2),
            "ai_time_per_conversation_s": _per(self.ai_seconds, self.with_ai),
            "human_time_s": round(sum(self.handles), 2),
            "human_time_per_conversation_s": _per(sum(self.handles), len(self.handles)),
            "llm_tokens": self.prompt_tokens + self.completion_tokens,
            "runs": self.runs.runs,
            "runs_with_llm": self.runs.with_llm,
            "run_llm_tokens": self.runs.total.tokens,
            **self._costs(),
            "agents": {
                name: {"holding": now, "handled": done} for name, (now, done) in sorted(self.agents.items())
            },
        }

    def _costs(self) -> dict[str, object]:
        ai = self.prices.llm(self.prompt_tokens, self.completion_tokens)
        human = self.prices.human(sum(self.handles))
        on_runs = self.prices.of(self.runs.total)
        return {
            "currency": self.prices.currency,
            "ai_cost": None if ai is None else round(ai, 4),
            "ai_cost_per_conversation": None if ai is None else _per(ai, self.with_ai, 4),
            "human_cost": None if human is None else round(human, 4),
            "human_cost_per_conversation": None if human is None else _per(human, len(self.handles), 4),
            # Per run whose llm steps made calls, as the assistant's is per conversation it spoke in.
            "run_ai_cost": None if on_runs is None else round(on_runs, 4),
            "ai_cost_per_run": None if on_runs is None else _per(on_runs, self.runs.with_llm, 4),
        }


async def stats(engine: AsyncEngine, since: float = 0.0, prices: Prices | None = None) -> Stats:
    """Figures over the conversations, and the workflow runs, created since ``since`` (costs only with
    ``prices`` set)."""
    out = Stats(prices=prices or Prices(), runs=await runs_usage(RunStore(engine), since))
    rows, claimed, agent_rows = await ConversationStore(engine).figures_since(since)
    for row in rows:
        conv = Conversation.from_row(row)
        out.total += 1
        handed = row.handovers > 0
        out.handed_over += handed
        if conv.closed_at is not None:
            out.closed += 1
            out.by_ai += conv.state == State.FINISHED and not handed
        if conv.queued_at is not None and conv.claimed_at is not None and conv.claimed_at >= conv.queued_at:
            out.waits.append(conv.claimed_at - conv.queued_at)
        if conv.claimed_at is not None and conv.state == State.RESOLVED and conv.closed_at is not None:
            out.handles.append(conv.closed_at - conv.claimed_at)
        if conv.first_human_at is not None and conv.queued_at is not None:
            out.first_responses.append(max(conv.first_human_at - conv.queued_at, 0.0))
        if conv.rating is not None:
            out.ratings.append(conv.rating)
        out.prompt_tokens += conv.prompt_tokens
        out.completion_tokens += conv.completion_tokens
        out.ai_seconds += conv.ai_seconds
        out.with_ai += conv.turns > 0
        if conv.state == State.HUMAN_ACTIVE and conv.agent_name:
            now, done = out.agents.get(conv.agent_name, (0, 0))
            out.agents[conv.agent_name] = (now + 1, done)
    names = {r.ref: r.name for r in agent_rows}
    for _conv_id, actor, _at in claimed:
        name = names.get(actor) or actor.partition(":")[2] or actor
        now, done = out.agents.get(name, (0, 0))
        out.agents[name] = (now, done + 1)
    return out


def _per(total: float, count: int, digits: int = 2) -> float | None:
    return round(total / count, digits) if count else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 2)
