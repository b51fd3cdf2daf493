"""What the console page receives: messages and forms as JSON, and the websocket fan-out to open pages.

HTML is made here on the server, and only by escaping: cards and forms by ``cards.html`` (Jinja2 with
autoescaping), plain text with ``markupsafe.escape``. The page inserts it as it comes and never builds
markup out of user text itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from markupsafe import Markup

from bot.identity import Identity
from bot.storage.console import Message
from cards.html import render_form_html, render_html
from cards.model import Form

log = logging.getLogger(__name__)
BOT = "Switchboard"  # the author of everything the bot posts


def message_html(msg: Message) -> str:
    """The message body: its text (unless it only repeats the card's fallback), then its card."""
    parts: list[str] = []
    if msg.text and (msg.card is None or msg.text != msg.card.plain_text()):
        parts.append(Markup('<div class="msg__text">{}</div>').format(msg.text))
    if msg.card is not None:
        parts.append(render_html(msg.card))
    return "".join(parts)


def message_json(msg: Message) -> dict[str, Any]:
    """A message as the page draws it."""
    return {
        "id": msg.id,
        "channel": msg.channel,
        "thread_id": msg.thread_id,
        "author": msg.author,
        "bot": msg.author == BOT,
        "text": msg.text,
        "html": message_html(msg),
        "card": msg.card.to_dict() if msg.card else None,
        # A DM is private as a whole: only a message hidden inside a shared channel is "ephemeral".
        "ephemeral": msg.visible_to is not None and not msg.channel.startswith("@"),
        "created_at": msg.created_at,
        "updated_at": msg.updated_at,
    }


def form_json(form: Form) -> dict[str, Any]:
    """A form the page opens as a dialog; ``form`` comes back with the submission, to redraw errors."""
    return {
        "form_id": form.form_id,
        "title": form.title,
        "state": form.state,
        "html": render_form_html(form),
        "form": form.to_dict(),
    }


@dataclass(frozen=True)
class Reader:
    """Who a socket was opened for, by which session (its CSRF token names it), and until when."""

    who: Identity
    session: str
    until: float


class Hub:
    """Every open page's websocket, with the person signed in on it; ``can_see`` decides who gets what.
    A socket is closed when its session signs out or ends, as the page's requests then are refused."""

    def __init__(self, can_see: Callable[[Identity, Message], bool], clock: Callable[[], float]) -> None:
        self.can_see = can_see
        self.clock = clock
        self.sockets: dict[web.WebSocketResponse, Reader] = {}

    def join(self, ws: web.WebSocketResponse, reader: Reader) -> None:
        self.sockets[ws] = reader

    async def end_session(self, session: str) -> None:
        """Close the sockets a session opened (it signed out)."""
        for ws in [ws for ws, r in self.sockets.items() if r.session == session]:
            self.leave(ws)
            await ws.close(code=4401, message=b"signed out")

    def leave(self, ws: web.WebSocketResponse) -> None:
        self.sockets.pop(ws, None)

    async def publish(self, msg: Message, event: str = "message") -> None:
        """Send a new or edited message to every page whose person may see it."""
        now = self.clock()
        for ws in [ws for ws, r in self.sockets.items() if r.until < now]:
            self.leave(ws)
            await ws.close(code=4401, message=b"session ended")
        targets = [ws for ws, r in self.sockets.items() if self.can_see(r.who, msg)]
        if targets:  # drawn only for someone to see it
            payload = {"type": event, "message": message_json(msg)}
            await asyncio.gather(*(self._send_one(ws, payload) for ws in targets))

    async def _send_one(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        try:
            await ws.send_json(payload)
        except (ConnectionError, RuntimeError) as exc:
            # A page closed mid-send; it reloads the state when it reconnects.
            log.debug("console: dropping a closed websocket (%s)", exc)
            self.leave(ws)

    async def close_all(self) -> None:
        """Close every socket (going away), so the pages show they are disconnected and retry."""
        sockets = list(self.sockets)
        self.sockets.clear()
        for ws in sockets:
            await ws.close(code=1001, message=b"server shutting down")
