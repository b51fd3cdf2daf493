"""Suggestions while typing a command (Discord's autocomplete)."""

from __future__ import annotations

from bot.identity import allowed
from handlers.services import Services
from handlers.types import Autocomplete


async def workflow_names(ac: Autocomplete, svc: Services) -> list[str]:
    """Workflow names this user may run, those starting with what was typed first."""
    names = [w.spec.name for w in svc.workflows() if allowed(w.spec.permissions.run, ac.who, ac.where)]
    typed = ac.partial.lower()
    return sorted(names, key=lambda n: (not n.lower().startswith(typed), typed not in n.lower(), n))
