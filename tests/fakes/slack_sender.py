"""Slack's side of the Events API and interactivity: requests to the bot, signed as Slack signs them.

Slash commands are form-encoded fields, button clicks and modal submits are form-encoded
``payload=<json>``, events are JSON envelopes with an ``event_id``. Each request is signed with
``SignatureVerifier.generate_signature`` over the exact bytes sent (``v0:{timestamp}:{body}``).
Trigger ids and response URLs come from the ``FakeSlack`` the bot talks to, so ``views.open`` and
``respond()`` land there.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import FakeSlack


@dataclass(frozen=True)
class Answer:
    """The bot's HTTP answer and how long it took."""

    status: int
    text: str
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class SlackSender:
    """Sends signed requests to the bot's ``/slack/events`` URL."""

    def __init__(self, fake: FakeSlack, url: str, secret: str | None = None) -> None:
        self.fake = fake
        self.url = url
        self.verifier = SignatureVerifier(secret or fake.signing_secret)
        self.session = aiohttp.ClientSession()
        self._ids = itertools.count(1)

    async def close(self) -> None:
        await self.session.close()

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two headers Slack adds: the request timestamp and ``v0=`` + HMAC-SHA256."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(self.verifier.generate_signature(timestamp=stamp, body=body)),
        }

    async def send(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """POST ``body`` signed (``headers`` may override the signature to forge one)."""
        sent = {"Content-Type": content_type, **self.sign(body, timestamp), **(headers or {})}
        start = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=sent) as resp:
            text = await resp.text()
        return Answer(resp.status, text, time.perf_counter() - start)

    async def form(self, fields: dict[str, str], **kw: Any) -> Answer:
        return await self.send(urlencode(fields).encode(), "application/x-www-form-urlencoded", **kw)

    def _user(self, user: str) -> dict[str, Any]:
        name = self.fake.users.get(user, {}).get("name", user.lower())
        return {"id": user, "username": name, "name": name, "team_id": self.fake.team_id}

    def _response_url(self) -> str:
        return f"{self.fake.url}/respond/{next(self._ids)}"

    def command_body(
        self, text: str, user: str = "U0ALICE", channel: str = "C0OPS", command: str = "/workflow"
    ) -> bytes:
        """A slash command's form body, as Slack posts it."""
        return urlencode(self.command_fields(text, user, channel, command)).encode()

    def command_fields(
        self, text: str, user: str, channel: str, command: str = "/workflow"
    ) -> dict[str, str]:
        """A slash command's fields (form-encoded over HTTP, a JSON payload over Socket Mode)."""
        return {
            "token": "legacy-verification-token",
            "team_id": self.fake.team_id,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": self.fake.channels.get(channel, "unknown"),
            "user_id": user,
            "user_name": self._user(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": self._response_url(),
            "trigger_id": self.fake.trigger(),
        }

    async def command(self, text: str, user: str = "U0ALICE", channel: str = "C0OPS", **kw: Any) -> Answer:
        """``/workflow <text>`` typed by ``user`` in ``channel``."""
        return await self.send(
            self.command_body(text, user, channel), "application/x-www-form-urlencoded", **kw
        )

    async def click(self, action_id: str, channel: str, message_ts: str, user: str = "U0ALICE") -> Answer:
        """A button press on a message (``block_actions``)."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": self.fake.trigger(),
            "team": {"id": self.fake.team_id, "domain": "acme"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.fake.channels.get(channel, "unknown")},
            "message": self.fake.message(channel, message_ts),
            "state": {"values": {}},
            "response_url": self._response_url(),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "actions",
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return await self.form({"payload": json.dumps(payload)})

    async def submit(self, view: dict[str, Any], values: dict[str, str], user: str = "U0ALICE") -> Answer:
        """A modal submit (``view_submission``) of an opened ``view``, with ``values`` by block_id."""
        state: dict[str, Any] = {}
        for block in view.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            value = values.get(block["block_id"])
            if element["type"] == "static_select":
                option = {"text": {"type": "plain_text", "text": value}, "value": value} if value else None
                entry = {"type": "static_select", "selected_option": option}
            else:
                entry = {"type": element["type"], "value": value}
            state[block["block_id"]] = {element["action_id"]: entry}
        payload = {
            "type": "view_submission",
            "team": {"id": self.fake.team_id, "domain": "acme"},
            "user": self._user(user),
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "trigger_id": self.fake.trigger(),
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self.form({"payload": json.dumps(payload)})

    async def event(self, event: dict[str, Any], event_id: str, retry_num: int | None = None) -> Answer:
        """An Events API delivery; ``retry_num`` adds Slack's retry headers."""
        stored = self.fake.messages.get(event["channel"], [])
        if event.get("user") and not any(m["ts"] == event["ts"] for m in stored):
            self.fake.user_message(event["channel"], event["user"], event.get("text", ""), event["ts"])
        envelope = {
            "token": "legacy-verification-token",
            "team_id": self.fake.team_id,
            "api_app_id": "A0APP",
            "event": {"event_ts": event.get("ts", ""), **event},
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": self.fake.team_id,
                    "user_id": self.fake.bot_user,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        headers = (
            {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
            if retry_num
            else None
        )
        return await self.send(json.dumps(envelope).encode(), "application/json", headers=headers)
