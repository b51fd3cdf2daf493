"""Outbound webhook subscriptions, and the events they hear, queued in the commit that made them.

An event becomes one delivery row per subscription whose filter matches it, by a single
``INSERT ... SELECT`` in the transaction of the change (a run's batch, an approval's or a conversation's
transaction): an event is queued if and only if its change committed, and a subscription added from the
CLI is heard by every process at once. The outbox then delivers the rows (``bot.delivery.webhooks``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.errors import BadInput, NotFound
from bot.storage.journal import Batch
from bot.storage.tables import webhook_attempts, webhook_deliveries, webhook_filters, webhook_subscriptions

FAMILIES = ("run", "step", "approval", "conversation")
PATTERN = re.compile(r"\*|(?P<family>[a-z]+)\.(\*|[a-z_]+)")
MAX_PATTERNS = 20
MAX_BODY = 64 * 1024  # an event's data beyond this is left out (the receiver reads it from the API)
MAX_URL = 2000
MAX_SUBSCRIPTIONS = 100  # each event is one row per matching subscription


@dataclass(frozen=True)
class Subscription:
    """A subscription as stored (its secret is shown once, when it is added)."""

    id: str
    url: str
    events: list[str]
    secret: str
    created_by: str
    created_at: float


def like_patterns(given: list[str]) -> list[str]:
    """``run.*``, ``run.finished`` or ``*`` in LIKE form; anything else is refused, naming the form."""
    if not given:
        raise BadInput("Give the events to send, e.g. --events run.finished,approval.*")
    if len(given) > MAX_PATTERNS:
        raise BadInput(f"At most {MAX_PATTERNS} event patterns per subscription (got {len(given)})")
    out = []
    for pattern in given:
        found = PATTERN.fullmatch(pattern)
        if found is None or (found["family"] and found["family"] not in FAMILIES):
            families = ", ".join(f"{f}.*" for f in FAMILIES)
            raise BadInput(
                f"'{pattern}' is not an event pattern; use one of {families}, a name such as "
                "run.finished, or * for every event"
            )
        out.append(pattern.replace("*", "%"))
    return sorted(set(out))


def check_url(url: str) -> str:
    """An http(s) URL with a host; the address itself is checked when it is sent (the SSRF guard)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
        raise BadInput(
            f"'{url[:200]}' is not an http(s) URL (such as https://ci.example.com/hooks/switchboard)"
        )
    if parts.username or parts.password:
        raise BadInput("Put no credentials in a webhook URL; the receiver verifies the signature instead")
    return url


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# One delivery per matching subscription, in the caller's transaction.
FAN_OUT = webhook_deliveries.insert().from_select(
    ["subscription_id", "message_id", "event_type", "body", "status", "attempts", "next_at", "created_at"],
    sa.select(
        webhook_subscriptions.c.id,
        sa.bindparam("message_id", type_=sa.String),
        sa.bindparam("event_type", type_=sa.String),
        sa.bindparam("body", type_=sa.Text),
        sa.literal("pending", sa.String),
        sa.literal(0, sa.Integer),
        sa.bindparam("now", type_=sa.Float),
        sa.bindparam("created", type_=sa.Float),
    ).where(
        sa.exists().where(
            webhook_filters.c.subscription_id == webhook_subscriptions.c.id,
            sa.bindparam("match_type", type_=sa.String).like(webhook_filters.c.pattern),
        )
    ),
)


def event_params(event_type: str, data: dict[str, Any], now: float) -> dict[str, Any]:
    """The parameters of ``FAN_OUT`` for one event: its id, and its body as signed and sent."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = json.dumps({"type": event_type, "timestamp": stamp, "data": data}, default=str)
    if len(body) > MAX_BODY:
        small = (str, int, float, bool)
        kept = {k: v for k, v in data.items() if isinstance(v, small) and len(str(v)) < 200}
        body = json.dumps({"type": event_type, "timestamp": stamp, "data": {**kept, "truncated": True}})
    message_id = "msg_" + secrets.token_hex(12)
    return {
        "message_id": message_id,
        "event_type": event_type,
        "match_type": event_type,
        "body": body,
        "now": now,
        "created": now,
    }


def queue_in_batch(batch: Batch, events: list[tuple[str, dict[str, Any]]], now: float) -> None:
    """Queue events with a run's batch (they commit with it)."""
    batch.add(FAN_OUT, [event_params(t, d, now) for t, d in events])


async def queue(conn: AsyncConnection, event_type: str, data: dict[str, Any], now: float) -> None:
    """Queue one event in an open transaction."""
    await conn.execute(FAN_OUT, event_params(event_type, data, now))


class Subscriptions:
    """Adding, listing and removing subscriptions, and reading their delivery log."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, url: str, events: list[str], created_by: str, now: float) -> Subscription:
        """Store a subscription; its secret is new."""
        patterns = like_patterns(events)
        sub_id = "wh_" + secrets.token_hex(6)
        sub = Subscription(sub_id, check_url(url), events, new_secret(), created_by, now)
        async with self.engine.begin() as conn:
            # Written first, counted after: on SQLite a read that turns into a write fails at once with
            # "database is locked" when another commit lands in between; a first write waits its turn.
            await conn.execute(webhook_subscriptions.insert(), sub.__dict__)
            count = sa.select(sa.func.count()).select_from(webhook_subscriptions)
            if (await conn.execute(count)).scalar_one() > MAX_SUBSCRIPTIONS:
                raise BadInput(
                    f"At most {MAX_SUBSCRIPTIONS} webhooks; remove one first (`switchboard webhooks list`)"
                )
            await conn.execute(
                webhook_filters.insert(), [{"subscription_id": sub.id, "pattern": p} for p in patterns]
            )
        return sub

    async def all(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        query = sa.select(webhook_subscriptions).order_by(webhook_subscriptions.c.created_at)
        async with self.engine.connect() as conn:
            return [Subscription(**r._mapping) for r in (await conn.execute(query)).all()]

    async def get(self, ref: str) -> Subscription:
        """One subscription by id or unique prefix."""
        found = [s for s in await self.all() if s.id.startswith(ref)]
        if len(found) != 1:
            raise NotFound(f"No webhook {ref!r}; `switchboard webhooks list` shows them")
        return found[0]

    async def remove(self, ref: str, now: float) -> Subscription:
        """Delete a subscription; its undelivered events are failed (the log keeps them)."""
        sub = await self.get(ref)
        async with self.engine.begin() as conn:
            await conn.execute(webhook_filters.delete().where(webhook_filters.c.subscription_id == sub.id))
            await conn.execute(webhook_subscriptions.delete().where(webhook_subscriptions.c.id == sub.id))
            await conn.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.subscription_id == sub.id,
                    webhook_deliveries.c.status.in_(("pending", "sending")),
                )
                .values(status="failed", error="the subscription was removed", finished_at=now)
            )
        return sub

    async def deliveries(self, subscription_id: str | None = None, limit: int = 50) -> list[Any]:
        """The newest deliveries (of one subscription), newest first."""
        query = sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id.desc()).limit(limit)
        if subscription_id is not None:
            query = query.where(webhook_deliveries.c.subscription_id == subscription_id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def attempts(self, delivery_ids: list[int]) -> list[Any]:
        """The attempts of these deliveries, in order."""
        query = (
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())
