"""An answer streamed into Slack as the model writes it, the way Slack's AI apps do.

In a thread (an assistant thread, or a channel thread the bot answers in) the thread first shows
"is thinking…" (``assistant.threads.setStatus``), then the answer is one streamed message:
``chat.startStream`` with the first words, ``chat.appendStream`` with what came since (the preview
calls it coalesced, at most once per ``live_every``), and ``chat.stopStream`` with the rest. Where
Slack refuses to stream (a DM with no thread, a workspace or channel that does not allow it), the
answer is an ordinary ``chat.postMessage`` edited with ``chat.update``, at most every
``FALLBACK_EVERY`` seconds: ``chat.update`` is Tier 3 (about 50 a minute for the whole workspace, shared
with the cards). Either way the outbox then edits the message into the stored reply, with its blocks
and buttons.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bot.delivery.contract import DeliveryError, Sent
from bot.delivery.live import EditedMessage
from bot.identity import Identity
from bot.platforms.slack.errors import refused

if TYPE_CHECKING:
    from bot.platforms.slack.adapter import SlackAdapter

log = logging.getLogger(__name__)
THINKING = "is thinking…"
FALLBACK_EVERY = 3.0
LOADING = ["Reading the conversation…", "Looking things up…", "Writing the answer…"]


class SlackLive:
    """One streamed answer, or an edited post where Slack will not stream it."""

    @property
    def paced_finish(self) -> bool:
        """Whether the end must keep the edits' pace: not for chat.stopStream, a call of its own."""
        return self.fallback is not None

    def __init__(
        self, adapter: SlackAdapter, channel: str, thread: str | None, reader: Identity, key: str
    ) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self.channel = channel
        self.thread_ts = thread.partition(":")[2] if thread else None
        self.reader = reader
        self.key = key
        self.ts: str | None = None  # the streamed message
        self.streamed = ""  # the text Slack has
        self.fallback: EditedMessage | None = None
        self._edited = 0.0  # time.monotonic() of the fallback's last call

    async def begin(self) -> None:
        if self.thread_ts is None:
            return  # the status belongs to a thread
        try:
            with refused("assistant.threads.setStatus", self.channel):
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel,
                    thread_ts=self.thread_ts,
                    status=THINKING,
                    loading_messages=LOADING,
                )
        except DeliveryError as exc:
            # Not an assistant thread (or no assistant:write scope): the answer streams all the same.
            log.debug("Slack: no thinking status in %s:%s (%s)", self.channel, self.thread_ts, exc)

    async def show(self, text: str) -> None:
        if self.fallback is not None:
            if time.monotonic() - self._edited >= FALLBACK_EVERY:
                self._edited = time.monotonic()
                await self.fallback.show(text)
        elif self.ts is None:
            await self._start(text)
        elif text.startswith(self.streamed) and len(text) > len(self.streamed):
            with refused("chat.appendStream", self.channel):
                await self.client.chat_appendStream(
                    channel=self.channel, ts=self.ts, markdown_text=text[len(self.streamed) :]
                )
            self.streamed = text
        # Otherwise the model began again (a new round after a tool call): a stream only grows, and
        # the stored reply that replaces it is right.

    async def _start(self, text: str) -> None:
        if self.thread_ts is not None:
            try:
                with refused("chat.startStream", self.channel):
                    resp = await self.client.chat_startStream(
                        channel=self.channel,
                        thread_ts=self.thread_ts,
                        markdown_text=text,
                        recipient_user_id=self.reader.user_id,
                        recipient_team_id=self.reader.workspace or None,
                    )
                self.ts, self.streamed = str(resp["ts"]), text
                return
            except DeliveryError as exc:
                log.info("Slack: cannot stream into %s (%s); posting and editing instead", self.channel, exc)
        thread = f"{self.channel}:{self.thread_ts}" if self.thread_ts else None
        self.fallback = EditedMessage(self.adapter, self.channel, thread, self.key)
        self._edited = time.monotonic()
        await self.fallback.show(text)

    async def finish(self, text: str) -> Sent | None:
        if self.fallback is not None:
            return await self.fallback.finish(text)
        if self.ts is None:
            return None
        rest = text[len(self.streamed) :] if text.startswith(self.streamed) else ""
        with refused("chat.stopStream", self.channel):
            await self.client.chat_stopStream(channel=self.channel, ts=self.ts, markdown_text=rest or None)
        self.streamed = text if rest else self.streamed
        return Sent(f"{self.channel}:{self.ts}")
