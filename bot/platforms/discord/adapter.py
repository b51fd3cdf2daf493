"""The Discord platform: runs the bot and is the outbox's sender.

The bot and its ``/workflow`` group are in ``bot.platforms.discord.client`` and
``bot.platforms.discord.commands``, inbound work in ``bot.platforms.discord.interactions``. This module
logs in, connects the gateway, stops, and delivers the outbox's cards: a status message edited in place,
a thread started from it, and replies in that thread.
A channel of the form ``dm:<user id>`` (an approval card for one approver) is that user's DM channel,
opened once and remembered. Delivery failures become ``DeliveryError`` (429: retry after; 5xx: retry;
missing access, an unknown channel or a user who takes no DMs: permanent, with a hint).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord
from discord.gateway import DiscordWebSocket

from bot.delivery.contract import DeliveryError, Rate, Sent
from bot.errors import BadInput, UpstreamUnavailable
from bot.platforms.discord.client import SwitchboardBot, point_at
from bot.platforms.discord.interactions import Interactions
from bot.platforms.discord.views import card_message
from cards.limits import clip
from cards.model import Card

if TYPE_CHECKING:
    from aiohttp import web

    from bot.platforms.context import PlatformContext

log = logging.getLogger(__name__)
T = TypeVar("T")
READY_TIMEOUT = 30.0
THREAD_EXISTS = 160004  # "A thread has already been created for this message"
UNKNOWN_MESSAGE = 10008
CANNOT_DM = 50007  # "Cannot send messages to this user": DMs from server members are off, or no shared server
INVALID_RECIPIENT = 50033  # opening a DM with an id that is no user
DM = "dm:"
ACCESS_HINT = (
    "give the bot the View Channel, Send Messages, Embed Links, Create Public Threads and "
    "Send Messages in Threads permissions in that channel"
)


class DiscordAdapter:
    """``bot.delivery.contract.Platform`` for Discord."""

    platform = "discord"
    # Discord's route buckets allow about 5 messages per 5 s per channel; edits have a bucket of their own.
    posting = Rate(1.0, burst=5)
    editing = Rate(1.0, burst=5)
    live_every = 1.0  # an answer being written is edited in at most once a second (bot.delivery.live)

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.bot = SwitchboardBot(Interactions(ctx))
        self._task: asyncio.Task[None] | None = None
        self._titles: dict[str, str] = {}  # message ref -> its card's title, to name its thread
        self._dms: dict[int, int] = {}  # user id -> their DM channel's id (Discord keeps it for good)
        self._threads: dict[str, str] = {}  # "channel:message" -> the thread started from that message

    def attach(self, app: web.Application) -> None:
        """No HTTP routes (Discord talks over the gateway); REST stays open until the server's cleanup, so
        the outbox can flush after ``stop``."""
        app.on_cleanup.append(self._close)

    async def start(self) -> None:
        """Log in, connect the gateway in the background and wait until ready."""
        settings = self.ctx.settings
        if not settings.discord_token:
            raise BadInput("Discord needs DISCORD_TOKEN")
        point_at(settings)
        try:
            await self.bot.login(settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            await self.bot.close()
            raise BadInput(
                "Discord refused DISCORD_TOKEN; copy the bot token from the Developer Portal "
                "(Bot → Reset Token)"
            ) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            await self.bot.close()
            raise UpstreamUnavailable(
                f"Discord: could not log in at {discord.http.Route.BASE}: {exc}"
            ) from None
        self._task = asyncio.create_task(self.bot.connect(), name="discord-gateway")
        ready = asyncio.ensure_future(self.bot.wait_until_ready())
        await asyncio.wait({self._task, ready}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return
        ready.cancel()
        failed = self._task.exception() if self._task.done() else None
        await self.stop()
        await self.bot.close()
        why = (
            f"the gateway connection failed: {failed}" if failed else f"not ready after {READY_TIMEOUT:.0f}s"
        )
        raise UpstreamUnavailable(
            f"Discord: {why} (gateway {DiscordWebSocket.DEFAULT_GATEWAY}); check the network and "
            "SWITCHBOARD_DISCORD_GATEWAY_URL"
        )

    async def stop(self) -> None:
        """Take no more interactions: close the gateway (REST stays open for the outbox's flush)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.bot.ws is not None:
            await self.bot.ws.close(code=1000)

    async def _close(self, _web_app: web.Application) -> None:
        await self.bot.close()

    def describe(self) -> str:
        """One line for the start-up log."""
        user = self.bot.user
        if user is None:
            return "Discord: not connected"
        return (
            f"Discord: connected as {user} in {len(self.bot.guilds)} server(s); "
            "register /workflow with `switchboard discord sync-commands`"
        )

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        """Send a card; the nonce (enforced) makes a re-send within minutes return the first message."""
        target = self.bot.get_partial_messageable(await self._resolve(channel))
        # Handover cards' keys share their first 25 chars but for 4 of the id's, and the llm messages of
        # one run all of them ("sb-card-llm:<run>:<step>:<attempt>"): cut short, they would clash.
        digest = channel.startswith(DM) or key.startswith(("sb-card-conversation:", "sb-card-llm:"))
        nonce = _nonce(key) if digest else key[:25]
        message = await self._call(
            channel, lambda: target.send(nonce=nonce, **card_message(None, card), **_attachment(card))
        )
        ref = f"{message.channel.id}:{message.id}"
        self._titles[ref] = card.title
        return Sent(ref)

    async def update(self, sent: Sent, card: Card) -> None:
        """Edit a card in place; a card without buttons clears the old ones."""
        channel, message_id = sent.ref.split(":")
        target = self.bot.get_partial_messageable(int(channel)).get_partial_message(int(message_id))
        await self._call(channel, lambda: target.edit(**card_message(None, card)))
        self._titles[sent.ref] = card.title

    async def thread(self, parent: Sent) -> str:
        """The thread started from a message (created once, then reused; Discord gives it the message's id).

        Called for every answer under a user's message, so a known thread costs no request: threads this
        process made or saw (THREAD_CREATE) are remembered. After a restart, creating it again gets 160004
        ("already created"), and the existing thread is fetched by the message's id.
        """
        known = self._threads.get(parent.ref)
        if known is not None:
            return known
        channel_id, message_id = parent.ref.split(":")
        if isinstance(self.bot.get_channel(int(message_id)), discord.Thread):
            return self._remember_thread(parent.ref, message_id)
        channel = self.bot.get_channel(int(channel_id)) or await self._call(
            channel_id, lambda: self.bot.fetch_channel(int(channel_id))
        )
        if isinstance(channel, discord.Thread | discord.DMChannel | discord.GroupChannel):
            return channel_id  # no threads in threads or DMs: the replies go under the card, inline
        if not isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.StageChannel):
            raise DeliveryError(f"Discord channel {channel_id} cannot hold threads", permanent=True)
        name = clip(self._titles.get(parent.ref) or await _title_of(channel, int(message_id)), 100)
        message = channel.get_partial_message(int(message_id))

        async def create() -> str:
            try:
                return str((await message.create_thread(name=name, auto_archive_duration=1440)).id)
            except discord.HTTPException as exc:
                if exc.code == UNKNOWN_MESSAGE:
                    # A user wrote in a thread with no starter message: the "message" is the thread itself.
                    with contextlib.suppress(discord.HTTPException):
                        found = await self.bot.fetch_channel(int(message_id))
                        if isinstance(found, discord.Thread):
                            return str(found.id)
                    raise
                if exc.code != THREAD_EXISTS:
                    raise
            # Made before (by an earlier process, or before a crash): fetch the existing one.
            return str((await self.bot.fetch_channel(int(message_id))).id)

        return self._remember_thread(parent.ref, await self._call(channel_id, create))

    def _remember_thread(self, ref: str, thread: str) -> str:
        self._threads[ref] = thread
        while len(self._threads) > 10_000:
            self._threads.pop(next(iter(self._threads)))
        return thread

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        """Post into the thread ``thread()`` returned."""
        return await self.post(thread, card, key)

    async def find(self, channel: str, key: str) -> Sent | None:
        """Always None: Discord cannot search by nonce, but an enforced nonce makes a re-send within a few
        minutes return the original message instead of posting twice, which covers a crash mid-send. That
        holds for a ``dm:`` address too: Discord answers every request to open a user's DM with the same
        channel, so the re-send lands where the first one did."""
        return None

    async def _resolve(self, channel: str) -> int:
        return await self._dm_channel(channel) if channel.startswith(DM) else self._channel_id(channel)

    async def _dm_channel(self, channel: str) -> int:
        """The DM channel of ``dm:<user id>``: opened once (POST /users/@me/channels), then remembered."""
        user = channel.removeprefix(DM)
        if not user.isdigit():
            raise DeliveryError(f"Discord: {channel} does not name a user id", permanent=True)
        user_id = int(user)
        if user_id not in self._dms:
            dm = await self._call(channel, lambda: self.bot.create_dm(discord.Object(user_id)))
            self._dms[user_id] = dm.id
        return self._dms[user_id]

    def _channel_id(self, channel: str) -> int:
        # Cards go to the id of the channel a command came from; a notify step may name a "#channel".
        name = channel.removeprefix("#")
        if name.isdigit():
            return int(name)
        found = [
            c.id for c in self.bot.get_all_channels() if c.name == name and isinstance(c, discord.TextChannel)
        ]
        if len(found) == 1:
            return found[0]
        raise DeliveryError(
            f"Discord: {len(found) or 'no'} text channels named #{name} in the bot's servers",
            permanent=True,
            hint="name a channel by its id (Discord Developer Mode → Copy Channel ID), or use a unique name",
        )

    async def _call(self, channel: str, call: Callable[[], Awaitable[T]]) -> T:
        if self.bot.is_closed() or self.bot.http.token is None:
            raise DeliveryError("Discord is not connected", retry_after=5.0)
        try:
            return await call()
        except discord.RateLimited as exc:
            raise DeliveryError("Discord rate limit", retry_after=exc.retry_after) from None
        except discord.HTTPException as exc:
            raise delivery_error(exc, channel) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"Discord unreachable: {exc}") from None


def _nonce(key: str) -> str:
    # discord.py sends enforce_nonce=True with every nonce; Discord keeps nonces 25 chars at most, and
    # returns the earlier message of the same author with the same nonce, whatever its channel. The
    # cards of one approval share their first 25 chars ("sb-card-approval:<id>", then ":dm:<user>"), so
    # a DM card's nonce is a digest of its whole key: cut short, the second approver would get the first's
    # message back instead of a card of their own.
    return "sb-dm-" + hashlib.sha256(key.encode()).hexdigest()[:19]


async def _title_of(channel: discord.abc.Messageable, message_id: int) -> str:
    # After a restart the card's title is not in memory: the status message's embed has it.
    with contextlib.suppress(discord.HTTPException, aiohttp.ClientError, OSError):
        message = await channel.fetch_message(message_id)
        if message.embeds and message.embeds[0].title:
            return message.embeds[0].title
    return "Switchboard run"


def delivery_error(exc: discord.HTTPException, channel: str) -> DeliveryError:
    """What the outbox should do about a refused request."""
    what = f"Discord refused a message for channel {channel}: {exc.status} {exc.text or ''} (code {exc.code})"
    if exc.status == 429:
        return DeliveryError(what, retry_after=float(exc.response.headers.get("Retry-After", 5.0)))
    if exc.status >= 500:
        return DeliveryError(what)
    if exc.status == 401:
        return DeliveryError(what, permanent=True, hint="check DISCORD_TOKEN")
    if exc.code == UNKNOWN_MESSAGE:
        return DeliveryError(what, permanent=True, hint="the status message was deleted")
    if exc.code == CANNOT_DM:
        return DeliveryError(what, permanent=True, hint="the user does not accept DMs from server members")
    if exc.code == INVALID_RECIPIENT:
        hint = "no Discord user has this id; name approvers by user id (Developer Mode → Copy User ID)"
        return DeliveryError(what, permanent=True, hint=hint)
    if exc.status in (403, 404):  # 50001 Missing Access, 50013 Missing Permissions, 10003 Unknown Channel
        return DeliveryError(what, permanent=True, hint=ACCESS_HINT)
    return DeliveryError(what, permanent=True, hint="Discord rejected the request as sent")


def _attachment(card: Card) -> dict[str, Any]:
    """A card's picture (a run's DAG) as the message's attachment, a multipart upload; a fresh file for
    each try, since a sent one has been read."""
    if card.image is None:
        return {}
    picture = card.image
    return {"file": discord.File(io.BytesIO(picture.data()), picture.name, description=picture.alt)}
