"""The interaction half of the fake Discord: pushing INTERACTION_CREATE events, and their answers.

Answers arrive as discord.py sends them: the callback (``POST /interactions/{id}/{token}/callback``, which
must return ``{"interaction", "resource"}`` JSON since discord.py 2.5) and followups through the
interaction webhook (``/webhooks/{app}/{token}``; the first followup after a defer replaces "thinking").
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.helpers import eventually

Json = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).isoformat()


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type`` exactly ``application/json`` (aiohttp's json_response adds a charset)."""
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class FakeInteractions:
    """Interactions a test pushes, and what the client answered (``FakeDiscord`` builds on it)."""

    messages: dict[str, Json]
    channels: dict[str, Json]
    sockets: list[web.WebSocketResponse]

    def __init__(self) -> None:
        self.interactions: dict[str, Json] = {}
        self.responses: dict[str, Json] = {}  # interaction id -> its callback body
        self.original: dict[str, str] = {}  # interaction token -> its original response's message id
        self.followups: dict[
            str, list[Json]
        ] = {}  # interaction token -> followups (and edits of the original)
        self._ids = itertools.count(1_400_000_000_000_000_000)
        self._seq = itertools.count(1)

    def next_id(self) -> str:
        return str(next(self._ids))

    def _apply_edit(self, message: Json, body: Json) -> Json:
        """Edit a stored message (the message store is ``FakeDiscord``'s)."""
        raise NotImplementedError

    async def push(self, event: str, data: Json) -> None:
        """Dispatch a gateway event to the connected client."""
        assert self.sockets, "no gateway connection"
        frame = {"op": 0, "t": event, "s": next(self._seq), "d": data}
        await self.sockets[-1].send_str(json.dumps(frame))

    async def interact(
        self, kind: int, data: Json, user: str = p.ALICE, channel: str = p.OPS, **extra: Any
    ) -> Json:
        """Push an INTERACTION_CREATE of ``kind`` (2 command, 3 component, 4 autocomplete, 5 modal)."""
        payload = p.interaction(self.next_id(), kind, data, user, self.channels[channel], **extra)
        self.interactions[payload["id"]] = payload
        await self.push("INTERACTION_CREATE", payload)
        return payload

    async def slash(self, sub: str, user: str = p.ALICE, channel: str = p.OPS, **options: str) -> Json:
        """``/workflow <sub> option:value ...``."""
        return await self.interact(2, p.command_data(sub, options), user, channel)

    async def autocomplete(self, sub: str, option: str, partial: str, user: str = p.ALICE) -> Json:
        return await self.interact(4, p.command_data(sub, {option: partial}, focused=option), user)

    async def click(self, custom_id: str, message: Json, user: str = p.ALICE) -> Json:
        data = {"custom_id": custom_id, "component_type": 2}
        return await self.interact(3, data, user, message["channel_id"], message=message)

    async def submit(self, custom_id: str, values: dict[str, str], user: str = p.ALICE) -> Json:
        return await self.interact(5, p.modal_data(custom_id, values), user)

    async def answered(self, interaction: Json, timeout: float = 5.0) -> Json:
        """The interaction's callback body, once it came."""
        return await self.until(lambda: self.responses.get(interaction["id"]), timeout)

    async def followup(self, interaction: Json, timeout: float = 5.0) -> Json:
        """The first followup (or the edited original) of the interaction, once it came."""

        def first() -> Json | None:
            sent = self.followups.get(interaction["token"])
            return sent[0] if sent else None

        return await self.until(first, timeout)

    @staticmethod
    async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``check`` until it returns something truthy (with ``tests.helpers.eventually``)."""
        return await eventually(check, timeout)

    async def _callback(self, body: Json, id: str, token: str) -> web.Response:
        interaction = self.interactions.get(id)
        if interaction is None or interaction["token"] != token:
            return reply({"message": "Unknown interaction", "code": 10062}, 404)
        if id in self.responses:
            return reply({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        self.responses[id] = body
        kind, data = body["type"], body.get("data") or {}
        flags = int(data.get("flags") or 0)
        message: Json | None = None
        if kind in (4, 5):  # a message, or "thinking" (flag 128) until the first followup
            content = data if kind == 4 else {"flags": flags | 128}
            message = p.message(self.next_id(), interaction["channel_id"], content, now(), webhook=True)
            self.messages[message["id"]] = message
            self.original[token] = message["id"]
        elif kind in (6, 7) and interaction.get("message"):  # the clicked message is the original
            self.original[token] = interaction["message"]["id"]
            if kind == 7:
                message = self._apply_edit(self.messages[interaction["message"]["id"]], data)
        result = {
            "id": id,
            "type": interaction["type"],
            "response_message_id": message["id"] if message else None,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags & 64),
        }
        resource: Json = {"type": kind}
        if message is not None:
            resource["message"] = message
        return reply({"interaction": result, "resource": resource})

    async def _followup(self, body: Json, app: str, token: str) -> web.Response:
        interaction = next((i for i in self.interactions.values() if i["token"] == token), None)
        if interaction is None or interaction["id"] not in self.responses:
            return reply({"message": "Unknown Webhook", "code": 10015}, 404)
        original = self.messages.get(self.original.get(token, ""))
        if original is not None and original["flags"] & 128:  # the first followup replaces "thinking"
            message = self._apply_edit(original, body)
        else:
            message = p.message(self.next_id(), interaction["channel_id"], body, now(), webhook=True)
            self.messages[message["id"]] = message
        self.followups.setdefault(token, []).append(message)
        return reply(message)

    def _hook_message(self, token: str, message: str) -> Json | None:
        return self.messages.get(self.original.get(token, "") if message == "@original" else message)

    async def _edit_hook(self, body: Json, app: str, token: str, message: str) -> web.Response:
        found = self._hook_message(token, message)
        if found is None:
            return reply({"message": "Unknown Message", "code": 10008}, 404)
        edited = self._apply_edit(found, body)
        self.followups.setdefault(token, []).append(edited)
        return reply(edited)

    async def _get_hook(self, body: Any, app: str, token: str, message: str) -> web.Response:
        found = self._hook_message(token, message)
        return reply(found) if found else reply({"message": "Unknown Message", "code": 10008}, 404)

    async def _delete(self, body: Any, app: str, token: str, message: str) -> web.Response:
        found = self._hook_message(token, message)
        if found is not None:
            self.messages.pop(found["id"], None)
        return web.Response(status=204)
