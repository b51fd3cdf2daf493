"""The figures ``/metrics`` reads from the database at each scrape: what is waiting, and for how long.

Counted from rows rather than in memory, so every process reports the same backlog.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import Figures
from bot.storage.conversations.states import State
from bot.storage.conversations.tables import conversations
from bot.storage.tables import approvals, chat_cards, chat_posts, runner_jobs


async def read_figures(engine: AsyncEngine, now: float) -> Figures:
    """Approvals pending, the conversation queue, the outbox backlog and runner jobs, as of ``now``."""
    pending = approvals.c.status == "pending"
    approvals_q = sa.select(
        sa.func.count(), sa.func.min(approvals.c.created_at), sa.func.min(approvals.c.expires_at)
    ).where(pending)
    queue_q = (
        sa.select(conversations.c.platform, sa.func.count(), sa.func.min(conversations.c.queued_at))
        .where(conversations.c.state == State.PENDING_HUMAN.value)
        .group_by(conversations.c.platform)
    )
    cards_q = (
        sa.select(chat_cards.c.platform, sa.func.count(), sa.func.min(chat_cards.c.updated_at))
        .where(chat_cards.c.version > chat_cards.c.sent_version)
        .group_by(chat_cards.c.platform)
    )
    posts_q = (
        sa.select(chat_posts.c.platform, sa.func.count(), sa.func.min(chat_posts.c.created_at))
        .where(chat_posts.c.status.in_(("pending", "sending")))
        .group_by(chat_posts.c.platform)
    )
    jobs_q = (
        sa.select(runner_jobs.c.status, sa.func.count(), sa.func.min(runner_jobs.c.created_at))
        .where(runner_jobs.c.status.in_(("queued", "leased")))
        .group_by(runner_jobs.c.status)
    )
    out = Figures()
    async with engine.connect() as conn:
        for status, n, since in (await conn.execute(jobs_q)).all():
            if status == "queued":
                out.runner_jobs_waiting = int(n)
                out.runner_oldest_wait = max(now - (since or now), 0.0)
            else:
                out.runner_jobs_running = int(n)
        count, oldest, expiry = (await conn.execute(approvals_q)).one()
        out.approvals_pending = int(count)
        out.approval_oldest_age = None if oldest is None else max(now - oldest, 0.0)
        out.approval_next_expiry = None if expiry is None else max(expiry - now, 0.0)
        for platform, n, queued in (await conn.execute(queue_q)).all():
            out.queue_waiting[platform] = int(n)
            out.queue_oldest_wait[platform] = max(now - (queued or now), 0.0)
        for query in (cards_q, posts_q):
            for platform, n, since in (await conn.execute(query)).all():
                out.outbox_pending[platform] = out.outbox_pending.get(platform, 0) + int(n)
                age = max(now - (since or now), 0.0)
                out.outbox_oldest[platform] = max(out.outbox_oldest.get(platform, 0.0), age)
    return out
