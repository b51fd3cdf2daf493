"""Slack: slack-bolt's ``AsyncApp`` on our aiohttp server (HTTP mode) or over Socket Mode, and delivery.

The same listeners (``bot.platforms.slack.listeners``) serve both modes: HTTP mode adds ``POST /slack/events``
to the shared server, where Bolt verifies each signature (401 when forged or over 5 minutes old) and a
replay of a request already handled is acked and ignored (``bot.platforms.slack.replays``);
``SLACK_APP_TOKEN`` switches to Socket Mode, where Slack pushes the same payloads over a websocket.
Outbound, the outbox calls ``post``/``update``/``reply``/``find``; whatever Slack refuses becomes a
``DeliveryError`` that says whether a retry can help and, if not, what to fix
(``bot.platforms.slack.errors``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.contract import DeliveryError, Rate, Sent
from bot.identity import Identity
from bot.platforms.slack.errors import hint_for, refused, slack_error
from bot.platforms.slack.identity import SlackDirectory
from bot.platforms.slack.listeners import SlackListeners, ack_commands_now
from bot.platforms.slack.live import SlackLive
from bot.platforms.slack.replays import OnceOnly
from bot.platforms.slack.retries import ShortRateLimitRetryHandler
from bot.storage.dedupe import make_request_guard
from cards.model import Card
from cards.slack import render_blocks, render_text

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
EVENT_TYPE = "switchboard"  # message metadata that marks our messages and carries the outbox key
FIND_THREADS = 5  # a crash mid-send is rare: look under this many recent cards for a lost thread reply


class _SameToken(logging.Filter):
    # AsyncApp also reads SLACK_BOT_TOKEN from the environment, then warns that the client's token wins:
    # they are the same token, and the warning would only worry whoever reads the log.
    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_SameToken())


class SlackAdapter:
    """The Slack platform: Bolt inbound, ``chat.postMessage``/``chat.update`` outbound."""

    platform = "slack"
    # Slack's rate-limit docs: chat.postMessage allows about one message a second per channel (short
    # bursts tolerated, not promised); chat.update is Tier 3, 50+ a minute per workspace, bursts welcome.
    posting = Rate(1.0)
    editing = Rate(60 / 50, burst=10, per_channel=False)
    live_every = 1.0  # a streamed answer is appended to at most once a second (bot.platforms.slack.live)

    def __init__(self, ctx: PlatformContext) -> None:
        settings = ctx.settings
        assert settings.slack_bot_token is not None, "SlackAdapter needs SLACK_BOT_TOKEN"
        self.ctx = ctx
        app_token = settings.slack_app_token
        self.socket_token = app_token.get_secret_value() if app_token else None
        # One keep-alive session for every call: slack_sdk otherwise opens a new one per request.
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        base_url = settings.slack_api_url
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            # slack_sdk joins method names with urljoin: without the slash, ".../api" loses "api".
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            session=self.session,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                # slack_sdk's default retries connection errors only; Slack's 429s and 5xx need these.
                # A long Retry-After goes back to the outbox, which retries when Slack says.
                ShortRateLimitRetryHandler(max_retry_count=2),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )
        secret = settings.slack_signing_secret
        self.bolt = AsyncApp(
            name="switchboard",
            client=self.client,  # its token is the app's token
            signing_secret=secret.get_secret_value() if secret else "",
            # Socket Mode payloads arrive over an authenticated websocket and carry no signature.
            request_verification_enabled=secret is not None,
            process_before_response=False,  # the 200 leaves at ack(); the listener keeps running
        )
        self.directory = SlackDirectory(self.client, settings.admins)
        ctx.directories["slack"] = self.directory.identity  # a web sign-in with Slack gets the same groups
        self.listeners = SlackListeners(ctx, self.client, self.directory, self.session)
        self.listeners.register(self.bolt)
        self.requests = make_request_guard(
            ctx.engine, settings.redis_url, ctx.router.services.runtime.store.journal
        )
        if secret is not None:  # a replayed signed request is acked and ignored (Socket Mode signs nothing)
            self.bolt.use(OnceOnly(self.requests, ctx.clock))
        self.bolt.use(ack_commands_now)  # after the replay check
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._stopping = False
        self._team = ""

    # The platform lifecycle.

    def attach(self, web_app: web.Application) -> None:
        """HTTP mode: ``POST /slack/events`` on the shared server. Socket Mode needs no route."""
        web_app.on_cleanup.append(self._close)  # after the outbox has flushed, not at stop()
        if self.socket_token is None:
            web_app.router.add_post(EVENTS_PATH, self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        if self._stopping:  # Slack retries events later; the next process will take them
            return web.Response(status=503, headers={"Retry-After": "10"}, text="Switchboard is restarting")
        return await to_aiohttp_response(await self.bolt.async_dispatch(await to_bolt_request(request)))

    async def start(self) -> None:
        """Check the token (``auth.test``), warm the group cache, and connect Socket Mode if chosen."""
        try:
            async with asyncio.timeout(10):
                auth = await self.client.auth_test()
            self._team = f"workspace {auth.get('team')}, bot @{auth.get('user')}"
            self.directory.warm(str(auth.get("team_id", "")))
        except SlackApiError as exc:
            log.error("Slack: auth.test failed (%s); %s", slack_error(exc), hint_for(exc) or "see the log")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            url = self.client.base_url
            log.error(
                "Slack: cannot reach %s (%r); check SWITCHBOARD_SLACK_API_URL and the network", url, exc
            )
        if self.socket_token is not None:
            await self._connect_socket(self.socket_token)

    async def _connect_socket(self, app_token: str) -> None:
        # slack_sdk's connect() retries forever, so a bad app token would hang start-up: check it first,
        # then connect in the background (it reconnects by itself from then on).
        try:
            async with asyncio.timeout(10):
                await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            log.error("Slack: Socket Mode not started: apps.connections.open said %s; %s", *_why(exc))
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("Slack: cannot reach Slack for Socket Mode yet (%r); retrying in the background", exc)
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(self.bolt, app_token)
        self._connecting = asyncio.ensure_future(self._socket.connect_async())  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        """Take no new requests; the Web API client stays open until the outbox has flushed."""
        self._stopping = True
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            if self._connecting is not None:
                self._connecting.cancel()

    async def _close(self, _web_app: web.Application) -> None:
        await self.session.close()
        await self.requests.close()

    def describe(self) -> str:
        """One line for the start-up log."""
        mode = f"HTTP at {self.ctx.url}{EVENTS_PATH}"
        if self.socket_token is not None:
            mode = (
                "Socket Mode" if self._socket is not None else "Socket Mode not started (see the error above)"
            )
        return f"Slack: {mode}" + (f" ({self._team})" if self._team else "")

    # Outbound, for the outbox.

    def live(self, channel: str, thread: str | None, reader: Identity, key: str) -> SlackLive:
        """The assistant's answer streamed as it is written (``bot.delivery.live``)."""
        return SlackLive(self, channel, thread, reader, key)

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        """``chat.postMessage`` with the outbox key in the message metadata (for ``find``)."""
        if card.image is not None:
            return await self._upload(channel, None, card)
        with refused("chat.postMessage", channel):
            resp = await self.client.chat_postMessage(channel=channel, **_message(card, key))
        return Sent(f"{resp['channel']}:{resp['ts']}")

    async def update(self, sent: Sent, card: Card) -> None:
        """``chat.update`` in place (the metadata stays as posted)."""
        channel, ts = split_ref(sent.ref)
        with refused("chat.update", channel):
            await self.client.chat_update(
                channel=channel, ts=ts, blocks=render_blocks(card), text=render_text(card)
            )

    async def thread(self, parent: Sent) -> str:
        """Slack threads need no creating: a thread is its parent's ``channel:ts``."""
        return parent.ref

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        """``chat.postMessage`` with ``thread_ts``."""
        channel, ts = split_ref(thread)
        if card.image is not None:
            return await self._upload(channel, ts, card)
        with refused("chat.postMessage", channel):
            resp = await self.client.chat_postMessage(channel=channel, thread_ts=ts, **_message(card, key))
        return Sent(f"{resp['channel']}:{resp['ts']}")

    async def _upload(self, channel: str, thread_ts: str | None, card: Card) -> Sent:
        """A card's picture as a file in the channel (or thread), its text as the comment: the upload flow
        ``files_upload_v2`` runs (files.getUploadURLExternal, the upload, files.completeUploadExternal).

        A file share carries no metadata, so ``find`` cannot see it: after a crash mid-upload the picture
        may be posted twice (at least once), unlike text messages. Needs the ``files:write`` scope.
        """
        assert card.image is not None
        with refused("files.completeUploadExternal", channel):
            try:
                resp = await self.client.files_upload_v2(
                    channel=channel,
                    thread_ts=thread_ts,
                    file=card.image.data(),
                    filename=card.image.name,
                    title=card.title,
                    alt_txt=card.image.alt,
                    initial_comment=render_text(card),
                )
            except SlackRequestError as exc:  # the upload URL refused the bytes: try again later
                raise DeliveryError(f"Slack file upload to {channel}: {exc}") from None
        return Sent(f"{channel}:{resp['files'][0]['id']}")

    async def find(self, channel: str, key: str) -> Sent | None:
        """A message posted with ``key``: the recent history, then the threads of our recent cards."""
        try:
            with refused("conversations.history", channel):
                history = await self.client.conversations_history(
                    channel=channel, limit=50, include_all_metadata=True
                )
                messages = history.get("messages") or []
                if (ts := _keyed(messages, key)) is not None:
                    return Sent(f"{channel}:{ts}")
                # Thread replies are not in the history: look under our own cards that have replies.
                parents = [m for m in messages if _ours(m) and m.get("reply_count")][:FIND_THREADS]
                for parent in parents:
                    replies = await self.client.conversations_replies(
                        channel=channel, ts=parent["ts"], limit=200, include_all_metadata=True
                    )
                    if (ts := _keyed(replies.get("messages") or [], key)) is not None:
                        return Sent(f"{channel}:{ts}")
        except DeliveryError as exc:
            if not exc.permanent:
                raise  # rate-limited or Slack is down: look again later rather than risk a duplicate
            log.warning("Slack: cannot check %s for an earlier send (%s; %s)", channel, exc, exc.hint)
        return None


def _why(exc: SlackApiError) -> tuple[str, str]:
    error = slack_error(exc)
    if error in ("invalid_auth", "not_allowed_token_type", "not_authed"):
        return error, "SLACK_APP_TOKEN must be an app-level token (xapp-…) with the connections:write scope"
    return error, hint_for(exc) or "see https://api.slack.com/apis/socket-mode"


def split_ref(ref: str) -> tuple[str, str]:
    """``channel:ts`` into its parts."""
    channel, _, ts = ref.partition(":")
    return channel, ts


def _message(card: Card, key: str) -> dict[str, Any]:
    return {
        "blocks": render_blocks(card),
        "text": render_text(card),  # the notification text, and what screen readers read
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"key": key}},
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _ours(message: dict[str, Any]) -> bool:
    return bool((message.get("metadata") or {}).get("event_type") == EVENT_TYPE)


def _keyed(messages: list[dict[str, Any]], key: str) -> str | None:
    for message in messages:
        if _ours(message) and (message["metadata"].get("event_payload") or {}).get("key") == key:
            return str(message["ts"])
    return None
