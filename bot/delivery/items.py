"""What the outbox delivers: a card version or a post, read from its row, and the pacing lane it goes in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot.delivery.contract import ChatAdapter, Rate
from cards.model import Card


@dataclass(frozen=True)
class Item:
    """One delivery: a card version, or a post."""

    kind: str  # card | post | email (a post on the email platform: sent once, by SMTP)
    key: str  # card key, or post id as text
    platform: str
    channel: str
    card: Card
    version: int = 0
    message_ref: str | None = None
    parent_key: str | None = None  # the card whose thread this post (or card) goes into
    thread_ref: str | None = None  # a post into the thread of this platform message
    attempts: int = 0
    uncertain: bool = False  # an earlier try may have reached the platform: look for it before sending
    claimed_by: str | None = None  # that process (dead), whose claim may be taken over
    status: str = ""  # a post's status as read (pending | sending)

    @property
    def is_edit(self) -> bool:
        """A card already posted, or a post that replaces a live preview: delivered by an edit in place."""
        return self.kind in ("card", "post") and self.message_ref is not None

    def claimed(self, row: Any) -> Item:
        """A card as its claim found the row: the newest version, and the message posted meanwhile, if any."""
        # Past the first try, or taken over from a dead claimant, the card may be on the platform already.
        maybe_posted = row.post_tries > 1 or self.claimed_by is not None
        return replace(
            self,
            card=Card.from_dict(row.card),
            version=row.version,
            message_ref=row.message_ref,
            thread_ref=row.thread_ref,
            attempts=row.attempts,
            uncertain=row.message_ref is None and maybe_posted,
        )


def card_item(row: Any) -> Item:
    """A card row that is due."""
    return Item(
        "card",
        row.key,
        row.platform,
        row.channel,
        Card.from_dict(row.card),
        row.version,
        row.message_ref,
        parent_key=row.parent_key,  # a card in the thread of that card (an llm step's text)
        thread_ref=row.thread_ref,
        attempts=row.attempts,
        claimed_by=row.claimed_by,
    )


def post_item(row: Any) -> Item:
    """A post row that is due (an ``email`` item when it is on the email platform)."""
    return Item(
        "email" if row.platform == "email" else "post",
        str(row.id),
        row.platform,
        row.channel,
        Card.from_dict(row.card),
        message_ref=row.message_ref,  # set on a pending post: it replaces that message (a live preview)
        parent_key=row.parent_key,
        thread_ref=row.thread_ref,
        attempts=row.attempts,
        uncertain=row.status == "sending",
        claimed_by=row.claimed_by,
        status=row.status,
    )


def lane(adapter: ChatAdapter, item: Item) -> tuple[str, Rate]:
    """The pacing lane of ``item`` and its rate: posts per channel, edits as the platform counts them."""
    kind, rate = ("edit", adapter.editing) if item.is_edit else ("post", adapter.posting)
    scope = item.channel if rate.per_channel else "*"
    return f"{item.platform}:{scope}:{kind}", rate
