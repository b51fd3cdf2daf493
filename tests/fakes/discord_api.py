"""A fake Discord: the REST routes discord.py 2.7 uses and a websocket gateway, on 127.0.0.1, port 0.

The real discord.py client is pointed at it with ``discord.http.Route.BASE`` (``api_url``) and
``DiscordWebSocket.DEFAULT_GATEWAY`` (``gateway_url``). It records every request, keeps messages,
threads, DM channels and interaction answers, and lets a test push ``INTERACTION_CREATE`` events with
the payloads Discord sends (``tests.fakes.discord_interactions``; a click in a DM comes with ``user``
instead of ``member`` and no guild), and ``MESSAGE_CREATE`` events for what people write (``say``,
``dm``; ``redeliver`` repeats one). A thread started from a message (``POST .../threads``) has the
message's id, is announced with THREAD_CREATE, and a second start answers 160004. Faults (429s with Discord's headers, 403s) are scripted per route,
and a user can be made to refuse DMs (``refuse_dms``).

Facts it follows (see PLATFORM_FACTS.md): discord.py parses JSON only when ``Content-Type`` is exactly
``application/json``; since 2.5 an interaction callback must answer ``{"interaction", "resource"}`` JSON;
2.7 reads ``attachment_size_limit``; a 429 without ``Via`` (or with a non-JSON body) counts as a
Cloudflare ban; gateway frames may be plain JSON text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_interactions import FakeInteractions, Json, now, reply

UPLOADS = "__uploads__"  # where a multipart request's files travel in the parsed body (not Discord's)


@dataclass
class Recorded:
    method: str
    path: str  # without the /api/v10 prefix
    body: Any
    query: dict[str, str]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1  # 0 = forever


class FakeDiscord(FakeInteractions):
    """The fake server; ``await start()``, then read ``api_url`` and ``gateway_url``."""

    def __init__(self, token: str = "fake-token") -> None:
        super().__init__()
        self.token = token
        self.requests: list[Recorded] = []
        self.uploads: dict[str, bytes] = {}  # attachment id -> the bytes uploaded with a message
        self.messages: dict[
            str, Json
        ] = {}  # every message by id: channel messages, thread replies, ephemerals
        self.edits: dict[str, list[Json]] = {}  # message id -> each edit's body
        self.edited_at: dict[str, list[float]] = {}  # message id -> when each edit arrived (monotonic)
        self.channels: dict[str, Json] = {c["id"]: c for c in p.channels()}
        self.threads: dict[str, Json] = {}  # parent message id -> thread channel
        self.dms: dict[str, str] = {}  # user id -> the id of the bot's DM channel with them
        self.refusing: set[str] = set()  # users who take no DMs from server members
        self.synced: dict[str, list[Json]] = {}  # "global" or a guild id -> the commands last synced
        self.faults: list[Fault] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.identified: list[Json] = []
        self._nonces: dict[str, tuple[float, str]] = {}  # nonce -> (when, message id)
        self._runner: web.AppRunner | None = None
        self.url = ""
        hook = r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)"
        message = r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)"
        table: list[tuple[str, str, Callable[..., Awaitable[web.Response]]]] = [
            ("GET", r"/gateway(/bot)?", self._gateway_info),
            ("GET", r"/users/@me", self._me),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("GET", r"(/oauth2)?/applications/@me", self._application),
            ("GET", r"/channels/(?P<channel>\d+)", self._get_channel),
            ("POST", r"/channels/(?P<channel>\d+)/messages", self._create_message),
            ("GET", message, self._get_message),
            ("PATCH", message, self._edit_message),
            ("POST", message + "/threads", self._thread),
            ("POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback", self._callback),
            ("POST", hook, self._followup),
            ("PATCH", hook + r"/messages/(?P<message>[^/]+)", self._edit_hook),
            ("GET", hook + r"/messages/(?P<message>[^/]+)", self._get_hook),
            ("DELETE", hook + r"/messages/(?P<message>[^/]+)", self._delete),
            ("GET", r"/guilds/(?P<guild>\d+)/roles", self._roles),
            ("PUT", r"/applications/(?P<app>\d+)(/guilds/(?P<guild>\d+))?/commands", self._sync),
        ]
        self.routes = [(m, re.compile(f"^{path}$"), handler) for m, path, handler in table]

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._socket)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    # -- scripting -------------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        body: Json,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and the ``path`` regex with an error."""
        self.faults.append(Fault(method, re.compile(path), status, body, headers or {}, times))

    def rate_limit(self, method: str, path: str, retry_after: float = 0.2) -> None:
        """One 429 as Discord sends it (JSON body, ``Via`` and ``X-RateLimit-*`` headers)."""
        headers = {
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket",
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        self.fail(method, path, 429, body, headers)

    def forbid_channel(self, channel: str) -> None:
        """Every request about ``channel`` gets 403 Missing Access."""
        self.fail(
            ".*", f"/channels/{channel}(/.*)?", 403, {"message": "Missing Access", "code": 50001}, times=0
        )

    def refuse_dms(self, user: str) -> None:
        """Messages to ``user``'s DM get 403 "Cannot send messages to this user" (50007), as Discord answers
        when someone has turned off DMs from server members (opening the DM channel still works)."""
        self.refusing.add(user)

    def dm_channel(self, user: str) -> str:
        """The id of the DM channel between ``user`` and the bot (made the first time either side needs it)."""
        if user not in self.dms:
            dm_id = self.next_id()
            self.dms[user] = dm_id
            self.channels[dm_id] = {"id": dm_id, "type": 1, "last_message_id": None, "flags": 0,
                                    "recipients": [p.user(user)]}  # fmt: skip
        return self.dms[user]

    async def say(self, user: str, channel: str, content: str, mention_bot: bool = False) -> Json:
        """``user`` writes ``content`` in ``channel`` (a text channel, a thread, or a DM channel id), pushed as
        MESSAGE_CREATE; ``mention_bot`` prefixes ``<@bot>`` and lists the bot in ``mentions``."""
        if mention_bot:
            content = f"<@{p.BOT_ID}> {content}"
        guild = self.channels[channel]["type"] != 1
        mentions = [p.BOT_ID] if mention_bot else []
        message = p.user_message(self.next_id(), channel, user, content, now(), guild, mentions)
        self.messages[message["id"]] = message
        await self.push("MESSAGE_CREATE", message)
        return message

    async def dm(self, user: str, content: str) -> Json:
        """``user`` writes to the bot in their DM."""
        return await self.say(user, self.dm_channel(user), content)

    async def redeliver(self, message: Json) -> None:
        """The same MESSAGE_CREATE again (as after a gateway resume replays events)."""
        await self.push("MESSAGE_CREATE", message)

    def bot_messages(self, channel: str) -> list[Json]:
        """What the bot posted in ``channel`` (a DM, a channel or a thread), oldest first."""
        return [m for m in self.channel_messages(channel) if m["author"]["id"] == p.BOT_ID]

    def dm_messages(self, user: str) -> list[Json]:
        """Messages the bot sent ``user`` by DM, oldest first."""
        dm = self.dms.get(user)
        return self.channel_messages(dm) if dm else []

    async def interact(
        self, kind: int, data: Json, user: str = p.ALICE, channel: str = p.OPS, **extra: Any
    ) -> Json:
        """As ``FakeInteractions.interact``; in a DM channel the payload is a DM's: no guild, ``user``."""
        if self.channels[channel]["type"] != 1:
            return await super().interact(kind, data, user, channel, **extra)
        payload = p.interaction(self.next_id(), kind, data, user, self.channels[channel], **extra)
        for key in ("guild_id", "guild", "member", "guild_locale"):
            del payload[key]
        # context 1 is the bot's DM; a guild install's owner there is "0" (no guild).
        payload |= {"user": p.user(user), "context": 1, "authorizing_integration_owners": {"0": "0"}}
        self.interactions[payload["id"]] = payload
        await self.push("INTERACTION_CREATE", payload)
        return payload

    def calls(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests matching ``method`` and the ``path`` regex."""
        pattern = re.compile(f"^{path}$")
        return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    def channel_messages(self, channel: str) -> list[Json]:
        """Messages posted in ``channel``, oldest first (ephemeral answers are not in a channel)."""
        return [m for m in self.messages.values() if m["channel_id"] == channel and not m["flags"] & 64]

    # -- HTTP ------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await _body(request)
        self.requests.append(Recorded(request.method, path, body, dict(request.query)))
        for fault in self.faults:
            if re.fullmatch(fault.method, request.method) and fault.pattern.fullmatch(path):
                if fault.times == 1:
                    self.faults.remove(fault)
                elif fault.times > 1:
                    fault.times -= 1
                return reply(fault.body, fault.status, fault.headers)
        bot_route = not path.startswith(("/interactions/", "/webhooks/"))  # those carry the token in the path
        if bot_route and request.headers.get("Authorization") != f"Bot {self.token}":
            return reply({"message": "401: Unauthorized", "code": 0}, 401)
        for method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match and method == request.method:
                return await handler(body, **match.groupdict())
        return reply({"message": f"404: Not Found ({request.method} {path})", "code": 0}, 404)

    async def _gateway_info(self, body: Any) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return reply({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _me(self, body: Any) -> web.Response:
        return reply(p.user(p.BOT_ID))

    async def _open_dm(self, body: Json) -> web.Response:
        # Discord answers with the same channel every time for one user (type 1, with its recipient);
        # discord.py's Client.create_dm needs nothing else (no GET /users/{id}).
        user = str(body.get("recipient_id", ""))
        if user not in p.NAMES or user == p.BOT_ID:
            return reply({"message": "Invalid Recipient(s)", "code": 50033}, 400)
        return reply(self.channels[self.dm_channel(user)])

    async def _application(self, body: Any) -> web.Response:
        return reply(p.application())

    async def _get_channel(self, body: Any, channel: str) -> web.Response:
        found = self.channels.get(channel)
        return reply(found) if found else reply({"message": "Unknown Channel", "code": 10003}, 404)

    async def _create_message(self, body: Json, channel: str) -> web.Response:
        if channel not in self.channels:
            return reply({"message": "Unknown Channel", "code": 10003}, 404)
        dm = self.channels[channel]["type"] == 1
        if dm and self.channels[channel]["recipients"][0]["id"] in self.refusing:
            return reply({"message": "Cannot send messages to this user", "code": 50007}, 403)
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce"):
            # Discord returns the author's earlier message with this nonce, whatever its channel (its docs
            # scope the check by author only; the bot is the only author here).
            seen = self._nonces.get(str(nonce))
            if seen and seen[0] > time.monotonic() - 120:
                return reply(self.messages[seen[1]])
        message = p.message(self.next_id(), channel, body, now())
        for upload in body.get(UPLOADS, []):
            attachment_id = self.next_id()
            self.uploads[attachment_id] = upload["data"]
            described = {a.get("id"): a for a in body.get("attachments") or []}
            index = upload["field"].removeprefix("files[").removesuffix("]")
            message["attachments"].append(
                {
                    "id": attachment_id,
                    "filename": upload["filename"],
                    "description": described.get(int(index) if index.isdigit() else index, {}).get(
                        "description"
                    ),
                    # Discord sniffs the type (discord.py sends application/octet-stream)
                    "content_type": "image/png"
                    if upload["data"].startswith(b"\x89PNG")
                    else upload["content_type"],
                    "size": len(upload["data"]),
                    "url": f"{self.url}/attachments/{channel}/{attachment_id}/{upload['filename']}",
                    "proxy_url": f"{self.url}/attachments/{channel}/{attachment_id}/{upload['filename']}",
                }
            )
        if dm:
            del message["guild_id"]  # a DM belongs to no guild
        self.messages[message["id"]] = message
        if nonce:
            self._nonces[str(nonce)] = (time.monotonic(), message["id"])
        return reply(message)

    async def _get_message(self, body: Any, channel: str, message: str) -> web.Response:
        found = self.messages.get(message)
        if found is None or found["channel_id"] != channel:
            return reply({"message": "Unknown Message", "code": 10008}, 404)
        return reply(found)

    async def _edit_message(self, body: Json, channel: str, message: str) -> web.Response:
        found = self.messages.get(message)
        if found is None or found["channel_id"] != channel:
            return reply({"message": "Unknown Message", "code": 10008}, 404)
        return reply(self._apply_edit(found, body))

    def _apply_edit(self, message: Json, body: Json) -> Json:
        self.edits.setdefault(message["id"], []).append(body)
        self.edited_at.setdefault(message["id"], []).append(time.monotonic())
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        message["flags"] = message["flags"] & ~128  # no longer "thinking"
        message["edited_timestamp"] = now()
        return message

    async def _thread(self, body: Json, channel: str, message: str) -> web.Response:
        if message not in self.messages:
            return reply({"message": "Unknown Message", "code": 10008}, 404)
        if message in self.threads:
            return reply(
                {"message": "A thread has already been created for this message", "code": 160004}, 400
            )
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            return reply({"message": "Invalid Form Body", "code": 50035}, 400)
        thread = p.thread(message, channel, name, body.get("auto_archive_duration", 1440), now())
        self.threads[message] = self.channels[message] = thread
        if self.sockets:  # Discord tells the creator's gateway too (the client caches the thread)
            await self.push("THREAD_CREATE", {**thread, "newly_created": True})
        return reply(thread)

    async def _roles(self, body: Any, guild: str) -> web.Response:
        return reply(p.roles())

    async def _sync(self, body: list[Json], app: str, guild: str | None = None) -> web.Response:
        synced = [
            {**c, "id": self.next_id(), "application_id": app, "version": self.next_id(), "guild_id": guild}
            for c in body
        ]
        self.synced[guild or "global"] = synced
        return reply(synced)

    # -- gateway ---------------------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41_250}, "s": None, "t": None}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame["op"] == 1:  # heartbeat
                    await ws.send_str(json.dumps({"op": 11}))
                elif frame["op"] == 2:  # identify
                    self.identified.append(frame["d"])
                    ready = p.ready(self.gateway_url)
                    await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": next(self._seq), "d": ready}))
                    guild = p.guild([c for c in self.channels.values() if c["type"] != 1])  # DMs: no guild
                    await ws.send_str(
                        json.dumps({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq), "d": guild})
                    )
        finally:
            self.sockets.remove(ws)
        return ws


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        body = json.loads(str(form.get("payload_json") or "{}"))
        files = [
            {
                "field": name,
                "filename": part.filename,
                "content_type": part.content_type,
                "data": part.file.read(),
            }
            for name, part in form.items()
            if isinstance(part, web.FileField)
        ]
        if files:
            body[UPLOADS] = files  # the uploaded files' bytes, for _create_message's attachments
        return body
    text = await request.text()
    return json.loads(text) if text else None
