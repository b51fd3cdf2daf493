"""The outbox's adapter for the ``api`` platform: conversations held over the REST API.

A website's chat widget reads replies from the conversation's stored messages (``GET
/api/v1/conversations/ID``), so there is nothing to push: each message the outbox hands over is accepted
at once, and the outbox's record of it is all there is.
"""

from __future__ import annotations

from bot.delivery.contract import UNLIMITED, Sent
from cards.model import Card

PLATFORM = "api"


class ApiChatAdapter:
    """Accepts every message for the ``api`` platform (the API's readers read the conversation store)."""

    platform = PLATFORM
    posting = UNLIMITED
    editing = UNLIMITED

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        return Sent(f"{channel}#{key}")

    async def update(self, sent: Sent, card: Card) -> None:
        return None

    async def thread(self, parent: Sent) -> str:
        return parent.ref

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        return Sent(f"{thread}#{key}")

    async def find(self, channel: str, key: str) -> Sent | None:
        return None
