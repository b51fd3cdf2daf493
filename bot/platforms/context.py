"""What a platform adapter may use: the settings, the router and a few services, never the whole process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.storage.dedupe import Dedupe
from bot.web_auth.people import Directory
from handlers.router import Router

if TYPE_CHECKING:
    from bot.conversations.service import Conversations


@dataclass
class PlatformContext:
    """Handed to each adapter by the process; ``conversations`` and ``url`` are filled in once they exist."""

    settings: Settings
    router: Router
    dedupe: Dedupe
    engine: AsyncEngine
    clock: Callable[[], float]
    conversations: Conversations | None = None  # made after the platforms, so read it per message
    url: str = ""  # the server's base URL, known once it listens
    # A platform's user id -> its identity with groups, for web sign-ins (Slack registers its directory).
    directories: dict[str, Directory] = field(default_factory=dict)
