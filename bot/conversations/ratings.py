"""The user's 1-5 rating of a resolved conversation: asked for with buttons when it closes, set once.

Only the person the conversation was with may rate it, and only once it is closed; a second click is
answered with the rating already given (the first one stands), so a retried click changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import BadInput, NotFound, NotPermitted
from bot.identity import Identity
from bot.storage.conversations.rows import Conversation
from cards.approval_card import hhmm
from cards.conversation_card import rating_card

if TYPE_CHECKING:
    from bot.conversations.service import Conversations

STARS = range(1, 6)


async def ask_for_rating(
    service: Conversations, conn: AsyncConnection, conv: Conversation, now: float
) -> None:
    """Post the rating buttons to the user, in the transaction that closed the conversation."""
    await service.out.to_user(conn, conv, rating_card(conv.id), now)


async def rate(service: Conversations, conv_id: str, who: Identity, stars: int) -> str:
    """Record ``who``'s rating; the text is what they read."""
    if stars not in STARS:
        raise BadInput("A rating is 1 to 5.")
    conv = await service.store.get(conv_id)
    if conv is None:
        raise NotFound("That conversation no longer exists.")
    if conv.user.ref != who.ref:
        raise NotPermitted("Only the person this conversation was with can rate it.")
    if conv.closed_at is None:
        raise BadInput("You can rate this conversation once it is resolved.")
    now = service.clock()
    async with service.engine.begin() as conn:
        if await service.store.rate(conn, conv.id, stars, now):
            await service.store.event(conn, conv.id, now, who.ref, "rated", None, None, {"rating": stars})
            return f"Thanks for rating this conversation {stars} of 5."
    current = await service.store.get(conv.id)
    assert current is not None and current.rating is not None
    when = hhmm(current.rated_at) if current.rated_at else "earlier"
    return f"You rated this conversation {current.rating} of 5 at {when}; a rating is given once."
