"""What a person reads after acting on an approval request: the outcome, or why the request is closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage import approvals as rows


@dataclass(frozen=True)
class Outcome:
    """What a decision did: the message for the person, and whether the run resumes."""

    message: str
    run_id: str
    resolved: bool


async def settled_text(conn: AsyncConnection, row: Any) -> str:
    """What a person reads about a request that is no longer pending: who settled it and when."""
    cast = await rows.votes(conn, row.id)
    current = await rows.status_of(conn, row.id)
    from bot.approvals.views import display, names  # the chat names of the people behind the refs

    deciders = [v.actor for v in cast if (v.decision != "reject") == (current.status == "approved")]
    known = await names(conn, deciders)
    who = ", ".join(display(actor, known) for actor in deciders)
    when = hhmm(current.decided_at) if current.decided_at else "?"
    if current.status == "expired":
        return f"This request expired at {when}"
    return f"Already {current.status} by {who or 'the engine'} at {when}"


def hhmm(moment: float) -> str:
    """``14:02 UTC``."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M UTC")
