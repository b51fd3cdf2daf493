"""The conversations page, for agents and admins (who read the agents' channel): the queue in order, the
agents on duty and their load, and the analytics ``switchboard conversations stats`` prints."""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversations.routing import queue_order
from bot.conversations.transcripts import stats
from bot.runtime.costs import Prices
from bot.storage.conversations.rows import Agent, Conversation
from bot.storage.conversations.store import ConversationStore
from handlers.services import Services

STATS_DAYS = 7  # the figures cover conversations started in the last week, as ``stats --since 7d`` would


@dataclass(frozen=True)
class ConversationsPage:
    queue: list[Conversation]  # in the order agents take them
    agents: list[Agent]
    figures: dict[str, object]  # the report of ``bot.conversations.transcripts.stats``
    since: float


async def load_conversations(svc: Services) -> ConversationsPage:
    engine = svc.runtime.store.engine
    store = ConversationStore(engine)
    since = svc.now() - STATS_DAYS * 86400
    return ConversationsPage(
        queue_order(await store.pending()),
        sorted(await store.agents(), key=lambda a: (not a.available, a.name)),
        (await stats(engine, since, Prices.from_settings(svc.runtime.settings))).report(),
        since,
    )
