"""What the API's handlers use: the handlers' services (runtime, catalog, settings) and the action log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.api.callers import PLACE, Caller
from bot.storage.action_log import record_action
from handlers.chat_text import storable
from handlers.services import Services

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """Handed to each group of endpoints; ``health`` reports the process (platforms, loaded runs)."""

    services: Services
    health: Callable[[], dict[str, Any]]

    async def record(self, caller: Caller, what: dict[str, Any], outcome: str, run_id: str | None) -> None:
        """Append the action to the ``action_log`` with the identity that took it, as chat's actions are."""
        row = {
            "at": self.services.now(),
            "actor": caller.who.ref,
            "identity": caller.who.to_dict(),
            "place": {**PLACE.to_dict(), "via": caller.via},
            "kind": "api",
            "detail": storable(what),
            "outcome": outcome,
            "run_id": run_id,
        }
        try:
            await record_action(self.services.runtime.store.journal, row)
        except Exception:
            log.exception("could not record API action %s by %s in the action log", what, caller.who.ref)
