"""Live previews: an answer shown in chat while the model writes it, then edited into the stored reply.

The text so far comes many times a second; a ``Preview`` passes it on at most once per the platform's
interval (``live_every``), the newest text winning, so a platform sees a handful of calls per answer
and never one per token. A preview is only a preview: the reply itself is stored and delivered by
the outbox as an edit of the preview's message (``finish`` hands that message over), so a preview that
breaks off, or a process that dies mid-answer, loses nothing that was stored.

A platform shows answers live when its adapter sets ``live_every``. It may offer its own ``live``
(Slack's streamed messages); otherwise it gets an ``EditedMessage``: its ``post`` (or ``reply`` in a
thread), then ``update`` in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from bot.delivery.contract import ChatAdapter, Sent
from bot.identity import Identity
from cards.model import Card

log = logging.getLogger(__name__)
WRITING = " …"  # after the text while the model is still writing
CALL_TIMEOUT = 10.0  # seconds a platform call of a preview may take before the preview gives up


class LiveMessage(Protocol):
    """One message that grows with the answer, as a platform shows it."""

    async def begin(self) -> None:
        """The model has started (Slack: the assistant thread's "is thinking…" status)."""
        ...

    async def show(self, text: str) -> None:
        """Show the whole text so far (the first call posts the message)."""
        ...

    async def finish(self, text: str) -> Sent | None:
        """The answer is complete (``text`` is all of it): end the stream; the message the stored reply
        is edited into."""
        ...


@runtime_checkable
class Streams(Protocol):
    """A platform with a live message of its own (checked with ``isinstance``)."""

    live_every: float

    def live(self, channel: str, thread: str | None, reader: Identity, key: str) -> LiveMessage:
        """A live message for an answer to ``reader``, in ``thread`` (a platform ref) or ``channel``."""
        ...


class EditedMessage:
    """A live message made of an ordinary post and edits of it."""

    def __init__(self, adapter: ChatAdapter, channel: str, thread: str | None, key: str) -> None:
        self.adapter = adapter
        self.channel = channel
        self.thread = thread
        self.key = key
        self.sent: Sent | None = None

    async def begin(self) -> None:
        return None

    async def show(self, text: str) -> None:
        card = _card(text + WRITING)
        if self.sent is not None:
            await self.adapter.update(self.sent, card)
        elif self.thread is not None:
            where = await self.adapter.thread(Sent(self.thread))
            self.sent = await self.adapter.reply(where, card, self.key)
        else:
            self.sent = await self.adapter.post(self.channel, card, self.key)

    async def finish(self, text: str) -> Sent | None:
        return self.sent


class Preview:
    """A live message fed the text so far as often as it comes, and passing it on coalesced."""

    def __init__(
        self, message: LiveMessage, every: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.message = message
        self.every = every
        self.clock = clock
        self.shown = ""  # the text the platform has
        self.latest = ""
        self.calls = 0  # show() calls that reached the platform
        self.broken = False  # a call failed: show no more, the stored reply still comes
        self._last = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._sending = False  # a show is on its way to the platform (not to be cancelled)

    async def begin(self) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self.message.begin()
        except Exception as exc:
            log.info("live preview: no status shown (%r)", exc)  # the answer still shows as it comes

    async def show(self, text: str) -> None:
        """Take the text so far; it reaches the platform within one interval."""
        self.latest = text
        if not self.broken and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._flush())

    async def finish(self) -> Sent | None:
        """End the stream with the whole text and hand over the message (None if nothing was shown).

        A show still waiting for its turn is dropped: the final call carries its text, so the end of an
        answer is not held back one more interval. The final call itself keeps the pace (one interval
        after the last), unless the message says its end is a call of its own (``paced_finish``).
        """
        pending = self._task is not None and not self._task.done() and not self._sending
        if pending and self._last + self.every > self.clock():  # it waits for its turn: drop it
            assert self._task is not None
            self._task.cancel()
        await self._settle()
        if not self.shown:
            return None
        wait = self._last + self.every - self.clock()
        if wait > 0 and getattr(self.message, "paced_finish", True):
            await asyncio.sleep(wait)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                sent = await self.message.finish(self.latest)
            self.shown = self.latest  # the end carried everything
            return sent
        except Exception as exc:
            log.warning("live preview: ending it failed (%r); the reply is posted anew", exc)
            return None

    async def cancel(self) -> None:
        """Stop showing (the turn ended without a reply, or failed)."""
        self.broken = True
        await self._settle()

    async def _settle(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _flush(self) -> None:
        wait = self._last + self.every - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)  # cancelled here by finish(), which carries this text instead
        if not self.broken and self.latest != self.shown:
            self._sending = True
            try:
                await self._send(self.latest)
            finally:
                self._sending = False

    async def _send(self, text: str) -> None:
        self._last = self.clock()
        if await self._guard(self.message.show(text)):
            self.shown = text
            self.calls += 1

    async def _guard(self, call: Awaitable[None]) -> bool:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):  # a platform that hangs must not hold the turn
                await call
        except Exception as exc:
            # A preview that fails stops; the stored reply is still delivered, by the outbox.
            log.warning("live preview: stopped (%r); the reply is sent when it is done", exc)
            self.broken = True
            return False
        return True


def open_preview(
    adapter: ChatAdapter, channel: str, thread: str | None, reader: Identity, key: str
) -> Preview | None:
    """The platform's live message if it has one, else an edited post, fed coalesced; None when the
    platform shows no answer live (it sets no ``live_every``)."""
    if isinstance(adapter, Streams):
        return Preview(adapter.live(channel, thread, reader, key), adapter.live_every)
    every = getattr(adapter, "live_every", None)
    if not isinstance(every, int | float):
        return None
    return Preview(EditedMessage(adapter, channel, thread, key), float(every))


def _card(text: str) -> Card:
    return Card(title="", text=text, fallback=text)
