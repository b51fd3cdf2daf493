"""A fake Slack Web API on localhost, and requests to the bot signed exactly as Slack signs them.

    async with FakeSlack() as fake:
        settings = Settings(slack_api_url=fake.base_url, slack_bot_token=fake.token, ...)
        slack = SlackSender(fake, f"{app.url}/slack/events")  # tests/fakes/slack_sender.py
        answer = await slack.command("run deploy service=api")
        fake.calls_to("chat.postMessage")

Like bolt-python's own ``tests/mock_web_api_server``, it serves the Web API methods the bot calls with
the JSON Slack answers (``{"ok": true, ...}`` or ``{"ok": false, "error": "channel_not_found"}``),
records every call (method, params from the query, form or JSON body, headers, the status answered),
and keeps state: messages per channel with their ``ts`` (so ``chat.update``, threads and
``conversations.history`` work), users and user groups. Faults are scripted: ``fail(method, times=N,
status=429, retry_after=1)`` answers the next N calls of a method with that error; ``break_channel``
makes every call naming a channel fail permanently. Trigger ids are issued by the fake and expire after
3 s, as Slack's do. For Socket Mode, ``apps.connections.open`` (with the ``xapp-`` token) hands out a
websocket on the fake, which says hello, takes ``push``ed envelopes down to the app and records its acks.

Slack's AI-app methods are served as the docs describe them: ``assistant.threads.setStatus`` records
the status of a thread (``statuses``); ``chat.startStream`` starts a message in a thread (it needs
``thread_ts``, and a recipient outside a DM), ``chat.appendStream`` adds markdown to it while it
streams, ``chat.stopStream`` ends it; ``chat.update`` of a message still streaming is refused.
``streaming = False`` makes ``chat.startStream`` refuse, like a workspace where it is not enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

TRIGGER_TTL = 3.0  # a trigger_id is good for about 3 s (Slack's docs)


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.monotonic()
    token: str = ""  # the bearer token it carried (tells apart processes given different tokens)
    ended: float | None = None  # time.monotonic() when it was answered, or the caller gave up on it
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    status: int
    error: str
    retry_after: float | None


class FakeSlack:
    """The Web API side of Slack: ``base_url`` goes into ``AsyncWebClient(base_url=...)``."""

    def __init__(self, token: str = "xoxb-fake-token", signing_secret: str = "fake-signing-secret") -> None:
        self.token = token
        self.app_token = "xapp-1-fake-app-token"  # Socket Mode's app-level token
        self.signing_secret = signing_secret
        self.team_id, self.team, self.bot_user, self.bot_id = "T0TEAM", "Acme", "U0BOT", "B0BOT"
        self.calls: list[Call] = []
        self.channels: dict[str, str] = {"C0OPS": "ops", "C0APPROVALS": "approvals", "D0ALICE": "alice"}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response_urls
        self.views: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}  # file id -> name, length, uploaded bytes, shares
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: list[dict[str, Any]] = []
        self.broken: dict[str, dict[str, Any]] = {}
        self.delays: dict[str, float] = {}
        self.holds: dict[str, float] = {}  # answer only after this long, the work already done
        self.hangs: dict[str, int] = {}  # this many more calls do the work, then never answer
        self.hanging = 0  # requests hung right now
        self.tokens = {token}  # bot tokens the fake accepts (more can be added)
        self._healed = asyncio.Event()
        self.triggers: dict[str, float] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: dict[str, tuple[float, Any]] = {}  # envelope_id -> (when, response payload)
        self.statuses: list[dict[str, Any]] = []  # assistant.threads.setStatus, in order
        self.streaming = True  # chat.startStream is allowed

    # Set-up and scripting.

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)  # where files.getUploadURLExternal points
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._healed.set()  # hung requests end, or the server's clean-up would wait for them
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """The Web API base, with the trailing slash slack_sdk's urljoin needs."""
        return f"{self.url}/api/"

    def add_user(self, user_id: str, name: str, real_name: str = "", groups: tuple[str, ...] = ()) -> None:
        """A workspace member, optionally in user groups (by handle, created as needed)."""
        profile = {"display_name": name, "real_name": real_name or name.title()}
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": profile["real_name"],
            "is_bot": False,
            "profile": profile,
        }
        for handle in groups:
            group = next((g for g in self.usergroups if g["handle"] == handle), None)
            if group is None:
                group = {"id": f"S{next(self._ids):08d}", "team_id": self.team_id, "handle": handle}
                group.update(name=handle.replace("-", " ").title(), users=[])
                self.usergroups.append(group)
            group["users"].append(user_id)

    def fail(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: float | None = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (429 carries ``Retry-After``)."""
        queue = self._faults.setdefault(method, deque())
        queue.extend([Fault(status, error, retry_after if status == 429 else None)] * times)

    def hang(self, method: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` do their work (a post is stored) and then never answer,
        until ``heal`` or until the caller gives up: a request lost in a network that went quiet."""
        self.hangs[method] = self.hangs.get(method, 0) + times
        self._healed.clear()

    def heal(self, method: str) -> None:
        """Forget the scripted faults, delays, holds and hangs of ``method``."""
        self._faults.pop(method, None)
        self.delays.pop(method, None)
        held = self.holds.pop(method, None)
        hung = self.hangs.pop(method, None)
        if held or hung is not None or self.hanging:
            self._healed.set()

    def break_channel(self, channel: str, error: str = "channel_not_found", **extra: Any) -> None:
        """Every call naming ``channel`` fails with ``error`` (and ``extra`` fields, e.g. ``needed``)."""
        self.broken[channel] = {"ok": False, "error": error, **extra}

    def user_message(self, channel: str, user: str, text: str, ts: str) -> None:
        """A message a person wrote (the sender stores what its events describe)."""
        message = {"type": "message", "user": user, "text": text, "ts": ts, "team": self.team_id}
        self.messages.setdefault(channel, []).append(message)

    def trigger(self) -> str:
        """A fresh trigger_id, as Slack puts in a command or click (valid for 3 s)."""
        trigger_id = f"{next(self._ids)}.{int(time.time())}.{'ab' * 16}"
        self.triggers[trigger_id] = time.monotonic()
        return trigger_id

    # Reading what happened.

    def calls_to(self, method: str) -> list[Call]:
        """Every call of ``method`` so far, faults included."""
        return [c for c in self.calls if c.method == method]

    def delivered(self, method: str) -> list[Call]:
        """The calls of ``method`` that succeeded."""
        return [c for c in self.calls_to(method) if c.status == 200 and c.answer.get("ok")]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages, oldest first, thread replies included."""
        return list(self.messages.get(channel, []))

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """One stored message."""
        return next(m for m in self.messages.get(channel, []) if m["ts"] == ts)

    # The server.

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        call = Call(method, params, dict(request.headers), time.monotonic(), auth.removeprefix("Bearer "))
        self.calls.append(call)
        if self.delays.get(method):
            await asyncio.sleep(self.delays[method])
        status, answer, headers = self._answer(method, params, auth)
        call.status, call.answer = status, answer
        if self.hangs.get(method):
            self.hangs[method] -= 1
            self.hanging += 1
            try:
                await self._healed.wait()
            finally:
                self.hanging -= 1
                call.ended = time.monotonic()
        if self.holds.get(method):
            # Slack has acted (the message exists) but the caller has not heard yet: a crash now is the
            # window where a sender cannot know whether its message went out. heal() ends the wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.holds[method]):
                    await self._healed.wait()
        call.ended = time.monotonic()
        return web.json_response(answer, status=status, headers=headers)

    def _answer(
        self, method: str, params: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        faults = self._faults.get(method)
        if faults:
            fault = faults.popleft()
            headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
            return fault.status, {"ok": False, "error": fault.error}, headers
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":  # the one method that takes the app-level token
            if auth != f"Bearer {self.app_token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": f"{self.url.replace('http', 'ws', 1)}/socket"}, {}
        if auth.removeprefix("Bearer ") not in self.tokens:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        channel = str(params.get("channel", ""))
        if channel in self.broken:
            return 200, dict(self.broken[channel]), {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        if method == "chat.postMessage" and channel in self.users:
            # A user id as the channel posts in the app's DM with that person (Slack opens it as needed).
            channel = params["channel"] = "D" + channel[1:]
            self.channels.setdefault(channel, self.users[channel.replace("D", "U", 1)]["name"])
        if channel and channel not in self.channels:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        try:
            return 200, {"ok": True, **handler(params)}, {}
        except _Refused as refused:
            return 200, {"ok": False, "error": str(refused)}, {}

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append({"id": request.match_info["id"], **(await request.json())})
        return web.json_response({"ok": True})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        # Socket Mode: Slack says hello, then pushes envelopes; the app acks each by envelope_id.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.append(ws)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}
        await ws.send_json({**hello, "debug_info": {"host": "fake", "approximate_connection_time": 18060}})
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.socket_acks[data["envelope_id"]] = (time.monotonic(), data.get("payload"))
        return ws

    async def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope (``slash_commands``, ``interactive``, ``events_api``) down the socket."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload}
        await self.sockets[-1].send_json({**envelope, "accepts_response_payload": kind != "events_api"})
        return envelope_id

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._ids):06d}"

    # Web API methods: each returns the answer's fields besides "ok" (or raises _Refused).

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://acme.slack.com/",
            "team": self.team,
            "user": "switchboard",
            "team_id": self.team_id,
            "user_id": self.bot_user,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("text") and not p.get("blocks"):
            raise _Refused("no_text")
        if len(p.get("blocks") or []) > 50:
            raise _Refused("invalid_blocks")
        message = {
            "type": "message",
            "user": self.bot_user,
            "bot_id": self.bot_id,
            "app_id": "A0APP",
            "team": self.team_id,
            "ts": self._ts(),
            "text": p.get("text", ""),
            "blocks": p.get("blocks") or [],
        }
        if p.get("metadata"):
            message["metadata"] = p["metadata"]
        thread_ts = p.get("thread_ts")
        if thread_ts:
            parent = next((m for m in self.messages.get(p["channel"], []) if m["ts"] == thread_ts), None)
            if parent is None:
                raise _Refused("thread_not_found")
            message.update(thread_ts=thread_ts, parent_user_id=parent["user"])
            parent.update(thread_ts=thread_ts, reply_count=parent.get("reply_count", 0) + 1)
            parent["latest_reply"] = message["ts"]
        self.messages.setdefault(p["channel"], []).append(message)
        return {"channel": p["channel"], "ts": message["ts"], "message": message}

    # Files: the upload flow of files_upload_v2 (get an upload URL, POST the bytes there, complete).

    def _files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            raise _Refused("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = {"filename": p["filename"], "length": int(p["length"]), "data": None}
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404, text="no such upload")
        found["data"] = await request.read()
        return web.Response(text="OK - " + str(len(found["data"])))

    def _files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        listed = json.loads(p["files"]) if isinstance(p.get("files"), str) else p.get("files") or []
        done = []
        for entry in listed:
            found = self.files.get(entry.get("id", ""))
            if found is None or found["data"] is None or len(found["data"]) != found["length"]:
                raise _Refused("invalid_upload")  # not uploaded, or not the length announced
            channel = p.get("channel_id")
            if channel and channel not in self.channels:
                raise _Refused("channel_not_found")
            found.update(
                title=entry.get("title"),
                channel=channel,
                thread_ts=p.get("thread_ts"),
                initial_comment=p.get("initial_comment"),
            )
            done.append({"id": entry["id"], "title": entry.get("title"), "name": found["filename"]})
        return {"files": done}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            message = self.message(p["channel"], p["ts"])
        except StopIteration:
            raise _Refused("message_not_found") from None
        if message.get("streaming"):
            raise _Refused("cant_update_message")
        message.update(text=p.get("text", ""), blocks=p.get("blocks") or [], edited={"ts": self._ts()})
        return {"channel": p["channel"], "ts": p["ts"], "text": message["text"], "message": message}

    def _assistant_threads_setStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("channel_id") not in self.channels:
            raise _Refused("channel_not_found")
        if not p.get("thread_ts"):
            raise _Refused("invalid_arguments")
        self.statuses.append(p)
        return {}

    def _chat_startStream(self, p: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming:
            raise _Refused("feature_not_enabled")
        parent = next((m for m in self.messages.get(p["channel"], []) if m["ts"] == p.get("thread_ts")), None)
        if parent is None:
            raise _Refused("invalid_thread_ts" if p.get("thread_ts") else "missing_thread_ts")
        if not p["channel"].startswith("D") and not (
            p.get("recipient_user_id") and p.get("recipient_team_id")
        ):
            raise _Refused("missing_recipient_user_id")
        message = {
            "type": "message",
            "user": self.bot_user,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "ts": self._ts(),
            "text": p.get("markdown_text") or "",
            "blocks": [],
            "thread_ts": p["thread_ts"],
            "streaming": True,
        }
        parent.update(thread_ts=p["thread_ts"], reply_count=parent.get("reply_count", 0) + 1)
        self.messages.setdefault(p["channel"], []).append(message)
        return {"channel": p["channel"], "ts": message["ts"]}

    def _streaming(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            message = self.message(p["channel"], p["ts"])
        except StopIteration:
            raise _Refused("message_not_found") from None
        if not message.get("streaming"):
            raise _Refused("message_not_in_streaming_state")
        message["text"] += p.get("markdown_text") or ""
        return message

    def _chat_appendStream(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": p["channel"], "ts": self._streaming(p)["ts"]}

    def _chat_stopStream(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming(p)
        message["streaming"] = False
        return {"channel": p["channel"], "ts": message["ts"], "message": message}

    def _chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(p)
        return {"message_ts": self._ts()}

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        issued = self.triggers.get(p.get("trigger_id", ""))
        if issued is None:
            raise _Refused("invalid_trigger_id")
        if time.monotonic() - issued > TRIGGER_TTL:
            raise _Refused("expired_trigger_id")
        view = {**p["view"], "id": f"V{next(self._ids):08d}", "team_id": self.team_id, "hash": self._ts()}
        self.views.append(view)
        return {"view": view}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(p.get("user", ""))
        if user is None:
            raise _Refused("user_not_found")
        return {"user": user}

    def _usergroups_list(self, p: dict[str, Any]) -> dict[str, Any]:
        with_users = str(p.get("include_users", "")).lower() in ("1", "true")
        groups = [
            {k: v for k, v in g.items() if k != "users" or with_users} | {"user_count": len(g["users"])}
            for g in self.usergroups
        ]
        return {"usergroups": groups}

    def _usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        group = next((g for g in self.usergroups if g["id"] == p.get("usergroup")), None)
        if group is None:
            raise _Refused("no_such_subteam")
        return {"users": list(group["users"])}

    def _conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        top = [m for m in self.messages.get(p["channel"], []) if m.get("thread_ts", m["ts"]) == m["ts"]]
        return self._page(top[::-1], p)

    def _conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        thread = [m for m in self.messages.get(p["channel"], []) if m.get("thread_ts") == p.get("ts")]
        if not thread:
            raise _Refused("thread_not_found")
        return self._page(thread, p)

    def _page(self, messages: list[dict[str, Any]], p: dict[str, Any]) -> dict[str, Any]:
        limit = int(p.get("limit", 100))
        with_metadata = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return {
            "messages": shown[:limit],
            "has_more": len(shown) > limit,
            "response_metadata": {"next_cursor": ""},
        }


class _Refused(Exception):
    """An ``{"ok": false, "error": ...}`` answer from a method handler."""
