"""The outbox dispatcher: delivers stored chat effects, paced per lane across processes, retried, never
blocking a run; and outbound webhooks, its "webhook" item kind (``bot.delivery.webhooks``).

Cards (edited in place) and posts (sent once) are rows written with the state change that caused them.
A card or post with a ``parent_key`` goes into the thread of that card, once that card is posted (an llm
step's message, edited as its text grows, lives in the thread of its run's status card).
Delivery claims a row (compare-and-set, so several processes can share the work), takes a slot in its
lane's pacing (shared by every process: ``bot.storage.pacing``), sends, and records the platform's
message ref. A card's claim returns the row as it is now, so a card another process posted meanwhile is
edited, not posted again. A row claimed by a process that died, or whose send timed out, may have been
sent already, so the adapter is asked to ``find`` it by key before sending again: on Discord the nonce
makes that exact; on Slack the message metadata does; the console is local and always exact.

Each send runs on its own, bounded by the delivery timeout: a send that hangs holds up nothing else in
its channel, and is retried after it times out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery.contract import ChatAdapter, DeliveryError, Sent
from bot.delivery.items import Item, card_item, lane, post_item
from bot.delivery.webhooks import WebhookSender
from bot.metrics import Metrics
from bot.owners import is_dead
from bot.storage.outbox import OutboxRows
from bot.storage.pacing import DatabasePacer, Pacer

log = logging.getLogger(__name__)
CLAIM_TIMEOUT = 60.0  # a claim older than this belongs to a process that is gone
MAX_ATTEMPTS = 8


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
        pacer: Pacer | None = None,
        timeout: float = 10.0,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.engine = engine
        self.rows = OutboxRows(engine)
        self.adapters = adapters
        self.owner = owner
        self.clock = clock
        self.card_interval = card_interval  # at most one edit per card per interval
        self.poll = poll
        self.pacer = pacer or DatabasePacer(engine)
        self.timeout = timeout  # a send with no answer by then is abandoned and retried
        # A claim outlives the longest send, so only a claimant that is gone loses it.
        self.claim_timeout = max(CLAIM_TIMEOUT, 3 * timeout)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}  # one worker per pacing lane
        self._sending: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.metrics = Metrics()  # the process sets its runtime's, which /metrics serves
        self.webhooks = webhooks  # the "webhook" item kind: signed POSTs to subscribers
        if webhooks is not None:
            webhooks.wake = self.wake

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
                await asyncio.gather(*self._lanes.values(), *self._sending, return_exceptions=True)
        except TimeoutError:
            log.warning("outbox: stopping with undelivered messages; they are sent at the next start")
        pending = [self._task, *self._lanes.values(), *self._sending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.close()  # a send in flight ends within its timeout; the rest stays stored
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self.webhooks is not None:
                try:
                    await self.webhooks.run_due()
                except Exception:
                    log.exception("outbox: reading due webhooks failed; retrying")
            try:
                items = await self._due()
            except Exception:
                log.exception("outbox: reading due items failed; retrying")
                continue
            by_lane: dict[str, list[Item]] = {}
            for item in items:
                by_lane.setdefault(lane(self.adapters[item.platform], item)[0], []).append(item)
            for name, queue in by_lane.items():
                running = self._lanes.get(name)
                if running is None or running.done():
                    self._lanes[name] = asyncio.create_task(self._work(queue), name=f"outbox {name}")

    async def _due(self) -> list[Item]:
        now = self.clock()
        card_rows, post_rows = await self.rows.due(now)
        items = [card_item(r) for r in card_rows if self._free(r, now) and r.platform in self.adapters]
        items += [post_item(r) for r in post_rows if self._free(r, now) and r.platform in self.adapters]
        return items

    def _free(self, row: Any, now: float) -> bool:
        """Unclaimed, or claimed by a process that is gone (or silent for the claim timeout)."""
        owner = row.claimed_by
        if owner is None:
            return True
        return bool(row.claimed_at < now - self.claim_timeout or is_dead(owner, self.owner))

    async def _work(self, queue: list[Item]) -> None:
        """One lane's items in order: claim each, wait for its slot, and start its send."""
        for item in queue:
            try:
                await self._take(self.adapters[item.platform], item)
            except Exception:
                log.exception("outbox: delivering %s %s failed unexpectedly", item.kind, item.key)
        self.wake()  # anything that became due meanwhile (a reply whose card is now posted)

    async def _take(self, adapter: ChatAdapter, item: Item) -> None:
        orphan: str | None = None
        if item.parent_key and (item.kind == "post" or not item.is_edit):
            parent = await self.rows.card(item.parent_key)
            if parent is None or parent.message_ref is None:
                if item.kind == "post" or not _given_up(parent):
                    return  # the thread's card is not posted yet; this waits for it
                # A card in the thread of a card that will not be posted: give this version up too.
                orphan = "its thread's card was not delivered" + (f": {parent.error}" if parent else "")
        claimed = await self._claim(item)
        if claimed is None:
            return  # another process has it, or sent it meanwhile
        if orphan is not None:
            await self._failed(claimed, DeliveryError(orphan, permanent=True))
            return
        thread: str | None = None
        if claimed.parent_key is not None and not claimed.is_edit:
            # The thread is looked up before the slot is taken, so the post follows its slot at once (a
            # look-up after it could put two posts into the channel less than a second apart).
            try:
                async with asyncio.timeout(self.timeout):
                    thread = await self._thread(adapter, claimed.parent_key)
            except TimeoutError:
                late = f"{adapter.platform} did not open the card's thread within {self.timeout:g} s"
                await self._failed(claimed, DeliveryError(late))
                return
            except DeliveryError as exc:
                await self._failed(claimed, exc)
                return
        name, rate = lane(adapter, claimed)
        if rate.every > 0:
            try:
                wait = await self.pacer.reserve(name, rate.every, rate.burst)
            except Exception as exc:
                log.exception("outbox: pacing lane %s is unavailable", name)
                await self._failed(claimed, DeliveryError(f"pacing unavailable: {exc!r}"))
                return
            await asyncio.sleep(wait)
        task = asyncio.create_task(self._send(adapter, claimed, thread), name=f"send {item.kind} {item.key}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _claim(self, item: Item) -> Item | None:
        now = self.clock()
        stale = now - self.claim_timeout
        if item.kind == "card":
            row = await self.rows.claim_card(item.key, self.owner, item.claimed_by, now, stale)
            return None if row is None else item.claimed(row)
        won = await self.rows.claim_post(int(item.key), item.status, self.owner, item.claimed_by, now, stale)
        return item if won else None

    async def _send(self, adapter: ChatAdapter, item: Item, thread: str | None = None) -> None:
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    sent = await self._call(adapter, item, thread)
            except TimeoutError:
                # The platform may have taken it and not answered yet: the retry looks for it first.
                error = f"{adapter.platform} did not answer within {self.timeout:g} s"
                await self._failed(item, DeliveryError(error), maybe_sent=True)
                return
            except DeliveryError as exc:
                await self._failed(item, exc)
                return
            if item.kind == "card":
                await self._card_sent(item, sent)
            else:
                assert sent is not None
                await self._post_sent(item, sent)
            self.delivered += 1
            self.metrics.outbox_delivered.labels(item.platform).inc()
        except Exception:
            log.exception("outbox: delivering %s %s failed unexpectedly", item.kind, item.key)

    async def _call(self, adapter: ChatAdapter, item: Item, thread: str | None = None) -> Sent | None:
        """The platform calls for one item: what was posted (None for an edit); ``thread`` is the parent
        card's thread when it was looked up already."""
        key = f"sb-{item.kind}-{item.key}"
        sent: Sent | None = None
        if item.uncertain and not item.is_edit:
            sent = await adapter.find(item.channel, key)
        if item.kind == "card":
            if item.message_ref is not None or sent is not None:
                # Found after an earlier try: it shows the version of that try, so bring it up to date.
                await adapter.update(sent or Sent(str(item.message_ref)), item.card)
            else:
                if item.parent_key is not None:
                    sent = await adapter.reply(
                        thread or await self._thread(adapter, item.parent_key), item.card, key
                    )
                else:
                    sent = await adapter.post(item.channel, item.card, key)
                if item.uncertain:
                    # A re-send may be answered with the earlier try's message, as that try left it (Discord's
                    # nonce): bring it up to this version.
                    await adapter.update(sent, item.card)
            return sent
        if sent is not None:
            return sent
        if item.message_ref is not None:
            # The final form of a live preview: the message is there, so it is edited, not posted again;
            # unless it is gone (deleted, or refused for good), when the reply is posted after all.
            try:
                await adapter.update(Sent(item.message_ref), item.card)
                return Sent(item.message_ref)
            except DeliveryError as exc:
                if not exc.permanent:
                    raise
                log.info("outbox: post %s: its preview cannot be edited (%s); posting it", item.key, exc)
        if item.parent_key is not None:
            return await adapter.reply(thread or await self._thread(adapter, item.parent_key), item.card, key)
        if item.thread_ref is not None:
            return await adapter.reply(await adapter.thread(Sent(item.thread_ref)), item.card, key)
        return await adapter.post(item.channel, item.card, key)

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

    async def _failed(self, item: Item, exc: DeliveryError, maybe_sent: bool = False) -> None:
        """Release the claim and retry later; a post that may have gone out stays "sending" (look first)."""
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
                    "status": "failed" if give_up else "sending" if maybe_sent else "pending",
                    "claimed_by": None,
                    "claimed_at": None,
                    "attempts": attempts,
                    "error": error,
                    "next_at": self.clock() + delay,
                },
            )


def _given_up(card: Any) -> bool:
    """A card row that is not posted and will not be until it changes: absent, or its newest version
    given up (``_failed`` marks that version sent, with the error)."""
    return card is None or (card.sent_version >= card.version and card.error is not None)
