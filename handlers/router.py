"""One entry point for every platform: route an input to its handler, map errors to replies, log it.

A user error becomes an ephemeral reply with its own message; anything unexpected becomes
"Something went wrong (ref abc123)" with the traceback logged under that ref. Every action is written
to the append-only ``action_log`` with the identity that took it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.errors import BadInput, SwitchboardError, log_unexpected
from bot.identity import Identity, Place
from bot.storage.action_log import record_action
from cards.model import parse_action_id
from handlers.chat_text import refusal_of, storable
from handlers.registry import ACTIONS, COMMANDS, COMPLETIONS, FORMS
from handlers.services import Services
from handlers.types import Autocomplete, Click, Command, FieldErrors, Reply, Say, Submission

log = logging.getLogger(__name__)


class Router:
    """Dispatches commands, clicks and form submissions to the handlers in ``handlers.registry``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def command(self, cmd: Command) -> Reply:
        """A slash command."""
        handler = COMMANDS.get(cmd.name)
        detail = {"command": cmd.name, "text": cmd.text}
        refused = refusal_of([cmd.name, cmd.text])
        if refused is not None:
            return await self._guard("command", cmd.who, cmd.where, detail, _refuse(refused))
        if handler is None:
            return await self._guard("command", cmd.who, cmd.where, detail, _unknown(f"/{cmd.name}"))
        return await self._guard("command", cmd.who, cmd.where, detail, lambda: handler(cmd, self.services))

    async def click(self, click: Click) -> Reply:
        """A button press."""
        detail = {"action_id": click.action_id}
        refused = refusal_of(click.action_id)
        if refused is not None:
            return await self._guard("click", click.who, click.where, detail, _refuse(refused))
        parsed = parse_action_id(click.action_id)
        handler = ACTIONS.get(parsed[0]) if parsed else None
        if parsed is None or handler is None:
            return await self._guard("click", click.who, click.where, detail, _unknown("this button"))
        kind, target, choice = parsed
        run_id = target if kind == "run" else None
        return await self._guard(
            "click",
            click.who,
            click.where,
            detail,
            lambda: handler(click, target, choice, self.services),
            run_id,
        )

    async def submit(self, sub: Submission) -> Reply:
        """A form submission; field errors keep the form open."""
        parsed = parse_action_id(sub.form_id)
        handler = FORMS.get(parsed[1]) if parsed and parsed[0] == "form" else None
        detail = {"form_id": sub.form_id, "fields": sorted(sub.values)}
        refused = refusal_of([sub.form_id, sub.values, sub.state])
        if refused is not None:
            return await self._guard("submit", sub.who, sub.where, detail, _refuse(refused))
        if parsed is None or handler is None:
            return await self._guard("submit", sub.who, sub.where, detail, _unknown("this form"))
        return await self._guard(
            "submit", sub.who, sub.where, detail, lambda: handler(sub, parsed[2], self.services)
        )

    async def autocomplete(self, ac: Autocomplete) -> list[str]:
        """Suggestions while typing (at most 25, as Discord allows)."""
        source = COMPLETIONS.get((ac.command, ac.option))
        if source is None:
            return []
        try:
            return (await source(ac, self.services))[:25]
        except Exception:
            log.exception("autocomplete for /%s %s failed", ac.command, ac.option)
            return []

    async def _guard(
        self,
        kind: str,
        who: Identity,
        where: Place,
        detail: dict[str, Any],
        call: Callable[[], Awaitable[Reply]],
        run_id: str | None = None,
    ) -> Reply:
        outcome = "ok"
        try:
            reply = await call()
            if isinstance(reply, FieldErrors):
                outcome = "field_errors"
        except SwitchboardError as exc:
            outcome = type(exc).__name__
            reply = Say(str(exc))
        except Exception:
            found = log_unexpected(log, "handling %s %s for %s failed", kind, detail, who.ref)
            outcome = f"error:{found.ref}"
            reply = Say(found.message)
        await self._log(kind, who, where, detail, outcome, run_id)
        return reply

    async def _log(
        self, kind: str, who: Identity, where: Place, detail: dict[str, Any], outcome: str, run_id: str | None
    ) -> None:
        row = {
            "at": self.services.now(),
            "actor": who.ref,
            "identity": who.to_dict(),
            "place": where.to_dict(),
            "kind": kind,
            "detail": storable(detail),
            "outcome": outcome,
            "run_id": run_id,
        }
        try:
            await record_action(self.services.runtime.store.journal, row)
        except Exception:
            log.exception("could not record %s by %s in the action log", kind, who.ref)


def _unknown(what: str) -> Callable[[], Awaitable[Reply]]:
    return _refuse(f"Switchboard does not know {what}; try /workflow help")


def _refuse(message: str) -> Callable[[], Awaitable[Reply]]:
    async def refuse() -> Reply:
        raise BadInput(message)

    return refuse
