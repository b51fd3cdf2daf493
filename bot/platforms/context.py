"""What a platform adapter may use: the settings, the router and a few services, never the whole process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.storage.dedupe import Dedupe
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
