"""The assistant's answer shown live while the model writes it (``bot.delivery.live``), per conversation.

The stored reply replaces the preview's message through the outbox. A turn that ends without a reply
(a hand-over, an error, a reply dropped because a person took over) leaves the preview saying so, also
through the outbox, so a preview never stays looking like an answer still being written.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.conversations.outbound import Outbound
from bot.delivery.contract import ChatAdapter
from bot.delivery.live import Preview, open_preview
from bot.storage.conversations.rows import Conversation
from cards.conversation_card import notice

CUT_OFF = " … (the answer broke off)"
WITHDRAWN = "(This answer was withdrawn: a person is taking over.)"


class LiveReplies:
    """Opens a preview on the conversation's platform, and closes one that did not become the reply."""

    def __init__(self, adapters: Mapping[str, ChatAdapter], engine: AsyncEngine, out: Outbound) -> None:
        self.adapters = adapters
        self.engine = engine
        self.out = out

    def open(self, conv: Conversation, turn: int) -> Preview | None:
        """A preview for turn ``turn``'s answer (None on a platform that is not running here)."""
        adapter = self.adapters.get(conv.platform)
        if adapter is None:
            return None
        key = f"sb-live-{conv.id}-{turn}"
        return open_preview(adapter, conv.channel, conv.thread, conv.user, key)

    async def withdraw(
        self, conn: AsyncConnection, conv: Conversation, ref: str, text: str, now: float
    ) -> None:
        """Queue the edit that turns a preview's message into ``text`` (inside the caller's transaction)."""
        await self.out.to_user(conn, conv, notice(text, "neutral"), now, replaces=ref)

    async def close(self, conv: Conversation, preview: Preview | None, now: float, cut: bool) -> None:
        """A turn ended without a reply: what the preview showed stays, marked if it broke off."""
        if preview is None:
            return
        ref = await preview.finish()
        if ref is None:
            return
        text = preview.shown + (CUT_OFF if cut else "")
        async with self.engine.begin() as conn:
            await self.withdraw(conn, conv, ref.ref, text, now)
