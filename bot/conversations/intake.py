"""Which chat messages are for the assistant: one rule for every platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.conversations.outbound import agents_channel

if TYPE_CHECKING:
    from bot.conversations.service import Conversations


def taking_messages(service: Conversations, platform: str) -> bool:
    """Conversations are on for ``platform`` with an assistant or an agents' channel to hand over to;
    without either, a handover would reach nobody, so mentions and DMs keep pointing at /workflow."""
    return service.assistant is not None or agents_channel(service.settings, platform) is not None


async def for_assistant(
    service: Conversations, *, direct: bool, mentioned: bool, support: bool, thread_place: str | None = None
) -> bool:
    """A direct message, a mention, a message in a support channel, or a plain reply in the thread of a
    conversation still open there (``thread_place``, the store's place key) is for the assistant."""
    if direct or mentioned or support:
        return True
    return thread_place is not None and await service.store.open_at(thread_place) is not None
