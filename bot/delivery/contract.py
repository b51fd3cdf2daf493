"""The contract between the outbox and each chat platform (Slack, Discord, the console).

Inbound, an adapter parses a platform payload once into a ``handlers.types`` input, acknowledges fast,
calls ``Router`` and renders the reply. Outbound, the outbox calls the methods below; an adapter
raises ``DeliveryError`` for anything the platform refused, saying whether a retry can help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cards.model import Card

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(frozen=True)
class Rate:
    """A platform's limit on one kind of call: ``burst`` at once, then one every ``every`` seconds.

    ``per_channel`` limits count each channel apart (Slack's one post a second per channel); the others
    count every call the app makes to the workspace (Slack's method tiers, such as ``chat.update``'s).
    """

    every: float
    burst: int = 1
    per_channel: bool = True


UNLIMITED = Rate(0.0)


@dataclass(frozen=True)
class Sent:
    """A message the platform accepted: its ref (Slack ``channel:ts``, Discord ``channel:message``)."""

    ref: str


class DeliveryError(Exception):
    """The platform refused a message: ``retry_after`` for 429s, ``permanent`` when a retry cannot help."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False, hint: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.permanent = permanent
        self.hint = hint  # what the operator should change, e.g. "invite the bot to the channel"


class ChatAdapter(Protocol):
    """What the outbox needs from a platform."""

    platform: str
    posting: Rate  # new messages and thread replies
    editing: Rate  # edits in place: a lane of their own, as the platforms count them apart

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        """Post a new message; ``key`` is unique per outbox item (stored with the message where possible)."""
        ...

    async def update(self, sent: Sent, card: Card) -> None:
        """Edit a message in place."""
        ...

    async def thread(self, parent: Sent) -> str:
        """The thread under ``parent`` (created if the platform needs that), as a channel-like ref."""
        ...

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        """Post into a thread that ``thread()`` returned."""
        ...

    async def find(self, channel: str, key: str) -> Sent | None:
        """A message posted earlier with ``key``, if the platform can tell (used after a crash mid-send)."""
        ...


class Platform(ChatAdapter, Protocol):
    """A platform adapter as the process runs it: routes on the shared web server, and a lifecycle."""

    def attach(self, app: web.Application) -> None:
        """Add this platform's HTTP routes (if any) to the shared aiohttp application."""
        ...

    async def start(self) -> None:
        """Connect (a gateway, a socket) once the web server is up."""
        ...

    async def stop(self) -> None:
        """Stop taking new work and disconnect."""
        ...

    def describe(self) -> str:
        """One line for the start-up log, e.g. "Console: http://127.0.0.1:8080"."""
        ...
