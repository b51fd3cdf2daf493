"""``/api/v1/webhooks``: outbound webhook subscriptions, as ``switchboard webhooks`` manages them.

Admins only (``SWITCHBOARD_ADMINS``), and a token also needs the ``webhooks:manage`` scope: a
subscription hears every run, approval and conversation, whoever it belongs to. The secret is in the
answer to the POST and nowhere after. Validation is ``Subscriptions``' own, so the CLI and the API
refuse the same things with the same words.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bot.api.callers import Caller
from bot.api.context import ApiContext
from bot.api.models import (
    Body,
    DeliveryAttempt,
    DeliveryInfo,
    DeliveryList,
    NewWebhook,
    WebhookCreated,
    WebhookInfo,
    WebhookList,
)
from bot.api.routing import Call, Reply
from bot.errors import NotFound, NotPermitted
from bot.storage.webhooks import Subscription, Subscriptions

MAX_DELIVERIES = 500


class DeliveryQuery(Body):
    limit: int = Field(default=50, ge=1, le=MAX_DELIVERIES, description="The newest this many")


class WebhookEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.subs = Subscriptions(ctx.services.runtime.store.engine)

    async def index(self, call: Call) -> WebhookList:
        _admin(call.who)
        return WebhookList(webhooks=[info(s) for s in await self.subs.all()])

    async def add(self, call: Call) -> Reply:
        """Store a subscription; the answer holds its secret, once."""
        caller = _admin(call.who)
        body: NewWebhook = call.body
        detail: dict[str, Any] = {"webhook": "add", "url": body.url[:200], "events": body.events[:20]}
        try:
            sub = await self.subs.add(body.url, body.events, caller.who.ref, self.ctx.services.now())
        except Exception as exc:
            await self.ctx.record(caller, detail, type(exc).__name__, None)
            raise
        await self.ctx.record(caller, {**detail, "id": sub.id}, "ok", None)
        created = WebhookCreated(**info(sub).model_dump(), secret=sub.secret)
        return Reply(created, 201, {"Location": f"/api/v1/webhooks/{sub.id}"})

    async def get(self, call: Call) -> WebhookInfo:
        _admin(call.who)
        return info(await self._exact(call.path["webhook_id"]))

    async def remove(self, call: Call) -> WebhookInfo:
        """Delete a subscription; its undelivered events are failed, and the log keeps them."""
        caller = _admin(call.who)
        sub = await self._exact(call.path["webhook_id"])
        removed = await self.subs.remove(sub.id, self.ctx.services.now())
        await self.ctx.record(caller, {"webhook": "remove", "id": removed.id, "url": removed.url}, "ok", None)
        return info(removed)

    async def deliveries(self, call: Call) -> DeliveryList:
        """What was sent to this subscription and what the receiver answered, newest first."""
        _admin(call.who)
        query: DeliveryQuery = call.query
        sub = await self._exact(call.path["webhook_id"])
        rows = await self.subs.deliveries(sub.id, query.limit)
        tries = await self.subs.attempts([r.id for r in rows]) if rows else []
        by_delivery: dict[int, list[DeliveryAttempt]] = {}
        for t in tries:
            by_delivery.setdefault(t.delivery_id, []).append(DeliveryAttempt.model_validate(dict(t._mapping)))
        return DeliveryList(
            deliveries=[
                DeliveryInfo.model_validate({**r._mapping, "attempt_log": by_delivery.get(r.id, [])})
                for r in rows
            ]
        )

    async def _exact(self, ref: str) -> Subscription:
        """A subscription by its whole id (the CLI's unique prefix is too loose for a DELETE)."""
        found = [s for s in await self.subs.all() if s.id == ref]
        if not found:
            raise NotFound(f"No webhook {ref!r}; GET /api/v1/webhooks lists them")
        return found[0]


def info(sub: Subscription) -> WebhookInfo:
    """A subscription without its secret."""
    return WebhookInfo(
        id=sub.id, url=sub.url, events=sub.events, created_by=sub.created_by, created_at=sub.created_at
    )


def _admin(caller: Caller) -> Caller:
    if not caller.who.admin:
        raise NotPermitted(
            f"Only an admin manages webhooks, and {caller.who.ref} is not one; an operator adds "
            "the identity to SWITCHBOARD_ADMINS (a token made with --as user:NAME acts as token:NAME)."
        )
    return caller
