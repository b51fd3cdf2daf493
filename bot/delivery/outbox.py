"""The outbox dispatcher: delivers stored chat effects, paced per channel, retried, never blocking a run.

Cards (edited in place) and posts (sent once) are rows written with the state change that caused them.
Delivery claims a row (compare-and-set, so several processes can share the work), sends, and records
the platform's message ref. A row claimed by a process that died may have been sent already, so the
adapter is asked to ``find`` it by key before sending again: on Discord the nonce makes that exact; on
Slack the message metadata does; the console is local and always exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery.contract import ChatAdapter, DeliveryError, Sent
from bot.metrics import Metrics
from bot.owners import is_dead
from bot.storage.outbox import OutboxRows
from cards.model import Card

log = logging.getLogger(__name__)
CLAIM_TIMEOUT = 60.0  # a claim older than this belongs to a process that is gone
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Item:
    """One delivery: a card version, or a post."""

    kind: str  # card | post
    key: str  # card key, or post id as text
    platform: str
    channel: str
    card: Card
    version: int = 0
    message_ref: str | None = None
    parent_key: str | None = None
    thread_ref: str | None = None  # a post into the thread of this platform message
    attempts: int = 0
    uncertain: bool = False  # claimed before by a process that may have sent it
    claimed_by: str | None = None  # that process (dead), whose claim may be taken over


class Outbox:
    """Delivers due cards and posts through the platform adapters."""

    def __init__(
        self,
        engine: AsyncEngine,
        adapters: dict[str, ChatAdapter],
        owner: str,
        clock: Callable[[], float],
        card_interval: float = 1.0,
        poll: float = 1.0,
    ) -> None:
        self.engine = engine
        self.rows = OutboxRows(engine)
        self.adapters = adapters
        self.owner = owner
        self.clock = clock
        self.card_interval = card_interval  # at most one edit per card per interval
        self.poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channels: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self.delivered = 0
        self.metrics = Metrics()  # the process sets its runtime's, which /metrics serves

    def wake(self) -> None:
        """Look for due items now (called after a commit that wrote some)."""
        self._wake.set()

    def start(self) -> None:
        """Start dispatching."""
        self._task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self, deadline: float = 5.0) -> None:
        """Deliver what is due within ``deadline`` seconds, then stop (the rest stays stored)."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(deadline):
                while await self._due():
                    self.wake()
                    await asyncio.sleep(0.05)
                await asyncio.gather(*self._channels.values(), return_exceptions=True)
        except TimeoutError:
            log.warning("outbox: stopping with undelivered messages; they are sent at the next start")
        self._task.cancel()
        for task in self._channels.values():
            task.cancel()
        await asyncio.gather(self._task, *self._channels.values(), return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                items = await self._due()
            except Exception:
                log.exception("outbox: reading due items failed; retrying")
                continue
            by_channel: dict[tuple[str, str], list[Item]] = {}
            for item in items:
                by_channel.setdefault((item.platform, item.channel), []).append(item)
            for place, queue in by_channel.items():
                running = self._channels.get(place)
                if running is None or running.done():
                    self._channels[place] = asyncio.create_task(self._deliver_all(place, queue))

    async def _due(self) -> list[Item]:
        now = self.clock()
        card_rows, post_rows = await self.rows.due(now)
        cards = [r for r in card_rows if self._free(r, now)]
        posts = [r for r in post_rows if self._free(r, now)]
        items = [
            Item(
                "card",
                r.key,
                r.platform,
                r.channel,
                Card.from_dict(r.card),
                r.version,
                r.message_ref,
                r.thread_ref,
                attempts=r.attempts,
                uncertain=r.claimed_by is not None and r.message_ref is None,
                claimed_by=r.claimed_by,
            )
            for r in cards
            if r.platform in self.adapters
        ]
        items += [
            Item(
                "post",
                str(r.id),
                r.platform,
                r.channel,
                Card.from_dict(r.card),
                parent_key=r.parent_key,
                thread_ref=r.thread_ref,
                attempts=r.attempts,
                uncertain=r.status == "sending",
                claimed_by=r.claimed_by,
            )
            for r in posts
            if r.platform in self.adapters
        ]
        return items

    def _free(self, row: Any, now: float) -> bool:
        """Unclaimed, or claimed by a process that is gone (or silent for CLAIM_TIMEOUT)."""
        owner = row.claimed_by
        if owner is None:
            return True
        return bool(row.claimed_at < now - CLAIM_TIMEOUT or is_dead(owner, self.owner))

    async def _deliver_all(self, place: tuple[str, str], queue: list[Item]) -> None:
        adapter = self.adapters[place[0]]
        for item in queue:
            wait = self._last_sent.get(place, 0.0) + adapter.pace - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if await self._deliver(adapter, item):
                    self._last_sent[place] = self.clock()
            except Exception:
                log.exception("outbox: delivering %s %s failed unexpectedly", item.kind, item.key)
        self.wake()  # anything that became due meanwhile (a reply whose card is now posted)

    async def _deliver(self, adapter: ChatAdapter, item: Item) -> bool:
        if item.kind == "post" and item.parent_key is not None:
            parent = await self._parent(item.parent_key)
            if parent is None:
                return False  # the thread's card is not posted yet; this post waits for it
        if not await self._claim(item):
            return False
        key = f"sb-{item.kind}-{item.key}"
        try:
            sent: Sent | None = None
            if item.uncertain:
                sent = await adapter.find(item.channel, key)
            if item.kind == "card":
                if item.message_ref is None and sent is None:
                    sent = await adapter.post(item.channel, item.card, key)
                elif item.message_ref is not None:
                    await adapter.update(Sent(item.message_ref), item.card)
                await self._card_sent(item, sent)
            else:
                if sent is None:
                    if item.parent_key is not None:
                        sent = await adapter.reply(
                            await self._thread(adapter, item.parent_key), item.card, key
                        )
                    elif item.thread_ref is not None:
                        thread = await adapter.thread(Sent(item.thread_ref))
                        sent = await adapter.reply(thread, item.card, key)
                    else:
                        sent = await adapter.post(item.channel, item.card, key)
                await self._post_sent(item, sent)
            self.delivered += 1
            self.metrics.outbox_delivered.labels(item.platform).inc()
            return True
        except DeliveryError as exc:
            await self._failed(item, exc)
            return True

    async def _parent(self, key: str) -> Any:
        row = await self.rows.card(key)
        return row if row is not None and row.message_ref is not None else None

    async def _thread(self, adapter: ChatAdapter, parent_key: str) -> str:
        row = await self._parent(parent_key)
        assert row is not None
        if row.thread_ref:
            return str(row.thread_ref)
        thread = await adapter.thread(Sent(row.message_ref))
        await self.rows.set_thread(parent_key, thread)
        return thread

    async def _claim(self, item: Item) -> bool:
        now = self.clock()
        return await self.rows.claim(
            item.kind, item.key, item.version, self.owner, item.claimed_by, now, now - CLAIM_TIMEOUT
        )

    async def _card_sent(self, item: Item, sent: Sent | None) -> None:
        values: dict[str, Any] = {
            "sent_version": item.version,
            "claimed_by": None,
            "claimed_at": None,
            "attempts": 0,
            "error": None,
            "next_at": self.clock() + self.card_interval,
        }
        if sent is not None:
            values["message_ref"] = sent.ref
        await self.rows.update_card(item.key, values)

    async def _post_sent(self, item: Item, sent: Sent) -> None:
        values = {"status": "sent", "message_ref": sent.ref, "claimed_by": None, "sent_at": self.clock()}
        await self.rows.update_post(int(item.key), {**values, "error": None})

    async def _failed(self, item: Item, exc: DeliveryError) -> None:
        attempts = item.attempts + 1
        give_up = exc.permanent or attempts >= MAX_ATTEMPTS
        delay = exc.retry_after if exc.retry_after is not None else min(2.0**attempts, 60.0)
        error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        self.metrics.outbox_errors.labels(item.platform, str(give_up).lower()).inc()
        if give_up:
            log.warning(
                "outbox: %s %s to %s/%s was not delivered: %s",
                item.kind,
                item.key,
                item.platform,
                item.channel,
                error,
            )
        else:
            log.info("outbox: %s %s will be retried in %.1fs: %s", item.kind, item.key, delay, error)
        if item.kind == "card":
            values: dict[str, Any] = {
                "claimed_by": None,
                "claimed_at": None,
                "attempts": attempts,
                "error": error,
                "next_at": self.clock() + delay,
            }
            if give_up:
                values["sent_version"] = item.version  # give up on this version; a newer one may succeed
            # A card never posted has no thread: its posts would wait forever (and hold up every shutdown).
            orphans = f"its card was not delivered: {error}" if give_up and item.message_ref is None else None
            await self.rows.update_card(item.key, values, orphans)
        else:
            await self.rows.update_post(
                int(item.key),
                {
                    "status": "failed" if give_up else "pending",
                    "claimed_by": None,
                    "claimed_at": None,
                    "attempts": attempts,
                    "error": error,
                    "next_at": self.clock() + delay,
                },
            )
