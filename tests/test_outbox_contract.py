"""The outbox's contract with each chat platform, checked the same way on all three real adapters.

Each case starts the real process (``start_app``) with one platform: the console (its own SQLite store),
Slack (the real SlackAdapter against the fake Slack Web API) or Discord (the real DiscordAdapter and
discord.py against the fake Discord). Cards and posts are written to the outbox's tables with the
storage layer's own statements, the outbox delivers them, and the test reads what the platform shows.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import sqlalchemy as sa
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from bot.config import Settings
from bot.delivery.contract import DeliveryError, Sent
from bot.platforms.discord.client import DEFAULT_API, DEFAULT_GATEWAY
from bot.process import App, start_app, stop_app
from bot.storage.cards import card_row, card_upsert, post_row
from bot.storage.console import ConsoleStore
from bot.storage.tables import chat_cards, chat_posts, console_messages
from cards.model import Card
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.helpers import eventually

PLATFORMS = ["console", "slack", "discord"]


@dataclass
class Shown:
    """A message as the platform shows it: its ref, the ref of the message it is threaded under, its text."""

    ref: str
    parent: str | None
    text: str


@dataclass
class Platform:
    """One platform under the contract: the running process, its adapter, and a way to read the platform."""

    name: str
    app: App
    channel: str  # where the outbox posts
    refused: str  # a channel the platform refuses (no access, not configured)
    shown: Callable[[], Any]  # every message the platform holds (awaitable of list[Shown])
    transient: Callable[[], bool]  # make the next post fail in a way a retry helps (False: cannot)

    @property
    def adapter(self) -> Any:
        return self.app.platforms[self.name]

    async def messages(self, token: str) -> list[Shown]:
        return [m for m in await self.shown() if token in m.text]


async def _console(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[Platform]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        workflows_dir=workflows_dir,
        port=0,
        poll_interval=0.05,
        card_update_interval=0.1,
    )
    app = await start_app(settings)

    async def shown() -> list[Shown]:
        store = ConsoleStore(app.engine)
        async with app.engine.connect() as conn:
            ids = (await conn.execute(sa.select(console_messages.c.id))).scalars().all()
        found = []
        for id in ids:
            msg = await store.get(id)
            assert msg is not None
            parent = str(msg.thread_id) if msg.thread_id is not None else None
            found.append(Shown(str(msg.id), parent, json.dumps(asdict(msg), default=str)))
        return found

    try:
        yield Platform("console", app, "#ops", "releases", shown, lambda: False)
    finally:
        await stop_app(app, grace=0.5, flush=0.5)


async def _slack(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[Platform]:
    async with FakeSlack() as fake:
        fake.channels["C0OUT"] = "out"
        fake.break_channel("C0OUT", "not_in_channel")
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}",
            workflows_dir=workflows_dir,
            port=0,
            console=False,
            slack_bot_token=SecretStr(fake.token),
            slack_signing_secret=SecretStr(fake.signing_secret),
            slack_api_url=fake.base_url,
            poll_interval=0.05,
            card_update_interval=0.1,
        )
        app = await start_app(settings)

        async def shown() -> list[Shown]:
            found = []
            for m in fake.channel_messages("C0OPS"):
                thread = m.get("thread_ts")
                parent = f"C0OPS:{thread}" if thread and thread != m["ts"] else None
                found.append(Shown(f"C0OPS:{m['ts']}", parent, json.dumps(m)))
            return found

        def transient() -> bool:
            fake.fail(
                "chat.postMessage", times=3, status=500, error="internal_error"
            )  # slack_sdk retries twice
            return True

        try:
            yield Platform("slack", app, "C0OPS", "C0OUT", shown, transient)
        finally:
            await stop_app(app, grace=0.5, flush=0.5)


async def _discord(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[Platform]:
    fake = FakeDiscord()
    await fake.start()
    fake.forbid_channel(p.LOCKED)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'discord.db'}",
        workflows_dir=workflows_dir,
        port=0,
        console=False,
        discord_token=fake.token,
        discord_api_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
        poll_interval=0.05,
        card_update_interval=0.1,
    )
    app = await start_app(settings)

    async def shown() -> list[Shown]:
        starters = {str(t["id"]): parent for parent, t in fake.threads.items()}  # thread id -> its message
        found = []
        for m in list(fake.messages.values()):
            if m["flags"] & 64:
                continue  # ephemeral answers are in no channel
            channel = str(m["channel_id"])
            parent = None
            if channel in starters:
                starter = starters[channel]
                parent = f"{fake.messages[starter]['channel_id']}:{starter}"
            found.append(Shown(f"{channel}:{m['id']}", parent, json.dumps(m)))
        return found

    def transient() -> bool:
        # A Retry-After past discord.py's own patience: the adapter hands the wait back to the outbox.
        fake.rate_limit("POST", f"/channels/{p.OPS}/messages", retry_after=60)
        return True

    try:
        yield Platform("discord", app, p.OPS, p.LOCKED, shown, transient)
    finally:
        await stop_app(app, grace=0.5, flush=0.5)
        await fake.stop()
        discord.http.Route.BASE = DEFAULT_API  # the adapter aimed these class attributes at the fake
        DiscordWebSocket.DEFAULT_GATEWAY = DEFAULT_GATEWAY


@pytest.fixture(params=PLATFORMS)
async def platform(
    request: pytest.FixtureRequest, tmp_path: Path, workflows_dir: Path
) -> AsyncIterator[Platform]:
    start = {"console": _console, "slack": _slack, "discord": _discord}[request.param]
    async for running in start(tmp_path, workflows_dir):
        yield running


# -- writing to the outbox as the runtime does ----------------------------------------------------------


async def put_card(platform: Platform, key: str, card: Card) -> None:
    """Store a card (new, or a newer version of it) and wake the outbox."""
    app = platform.app
    async with app.engine.begin() as conn:
        await conn.execute(card_upsert(app.engine), card_row(key, platform.name, platform.channel, card, 0.0))
    app.outbox.wake()


async def put_post(platform: Platform, card: Card, parent_key: str | None = None, **values: Any) -> int:
    """Store a message to send once (into ``parent_key``'s thread when given); return its id."""
    app = platform.app
    row = {**post_row(platform.name, platform.channel, parent_key, card, 0.0), **values}
    async with app.engine.begin() as conn:
        post_id = int((await conn.execute(chat_posts.insert().returning(chat_posts.c.id), row)).scalar_one())
    app.outbox.wake()
    return post_id


async def card_sent(platform: Platform, key: str, version: int) -> Any:
    """The card's row once its ``version`` (or a later one) is delivered."""

    async def probe() -> Any:
        async with platform.app.engine.connect() as conn:
            row = (await conn.execute(sa.select(chat_cards).where(chat_cards.c.key == key))).first()
        return row if row is not None and row.sent_version >= version and row.message_ref else None

    return await eventually(probe, message=f"{platform.name}: card {key} v{version} to be delivered")


async def post_done(platform: Platform, post_id: int) -> Any:
    """The post's row once the outbox is done with it (sent, or failed for good)."""

    async def probe() -> Any:
        async with platform.app.engine.connect() as conn:
            row = (await conn.execute(sa.select(chat_posts).where(chat_posts.c.id == post_id))).first()
        return row if row is not None and row.status in ("sent", "failed") else None

    return await eventually(probe, message=f"{platform.name}: post {post_id} to be delivered")


def token() -> str:
    return f"tok{secrets.token_hex(4)}"


# -- the contract -----------------------------------------------------------------------------------------


async def test_a_card_is_posted_once_and_edited_in_place_to_its_newest_version(platform: Platform) -> None:
    mark, v1, v2, v3 = token(), token(), token(), token()
    key = f"contract:{mark}"
    await put_card(platform, key, Card(title=f"Deploy {mark}", text=v1, status="running"))
    first = await card_sent(platform, key, 1)
    await put_card(platform, key, Card(title=f"Deploy {mark}", text=v2, status="running"))
    await put_card(platform, key, Card(title=f"Deploy {mark}", text=v3, status="succeeded"))
    last = await card_sent(platform, key, 3)
    assert last.message_ref == first.message_ref  # edited in place, never posted again

    async def newest() -> list[Shown]:
        shown = await platform.messages(mark)
        return shown if any(v3 in m.text for m in shown) else []

    [message] = await eventually(newest, message=f"{platform.name}: the card showing its newest version")
    assert message.ref == first.message_ref and message.parent is None
    assert v1 not in message.text and v2 not in message.text
    # find() by key: exact where the platform can search (Discord cannot; its enforced nonce covers a re-send).
    assert await platform.adapter.find(platform.channel, f"sb-card-{key}") in (Sent(first.message_ref), None)


async def test_a_reply_goes_into_the_thread_under_its_card(platform: Platform) -> None:
    mark, said = token(), token()
    key = f"contract:{mark}"
    post_id = await put_post(platform, Card(title="Step done", text=said), parent_key=key)
    await put_card(platform, key, Card(title=f"Deploy {mark}", text="running"))  # the reply waits for it
    card = await card_sent(platform, key, 1)
    post = await post_done(platform, post_id)
    assert post.status == "sent", post.error
    [reply] = await platform.messages(said)
    assert reply.ref == post.message_ref
    assert reply.parent == card.message_ref  # in the card's thread, not in the channel
    [top] = await platform.messages(mark)
    assert top.ref == card.message_ref and top.parent is None


async def test_a_post_is_sent_once_across_a_retry(platform: Platform) -> None:
    """A process sent the post, then died before recording it: the retry finds it by key, never doubles it."""
    mark = token()
    card = Card(title="Heads up", text=mark)
    later = 10.0**12  # not due yet: the "dead" process sends it first
    gone = {"status": "sending", "claimed_by": "gone-host:1:dead00", "claimed_at": 0.0, "next_at": later}
    post_id = await put_post(platform, card, **gone)
    sent = await platform.adapter.post(platform.channel, card, f"sb-post-{post_id}")
    async with platform.app.engine.begin() as conn:
        await conn.execute(chat_posts.update().where(chat_posts.c.id == post_id).values(next_at=0.0))
    platform.app.outbox.wake()
    post = await post_done(platform, post_id)
    assert post.status == "sent" and post.message_ref == sent.ref
    assert [m.ref for m in await platform.messages(mark)] == [sent.ref]  # once

    # A send that fails in a way a retry helps is sent once, when the platform takes it again.
    again = token()
    if platform.transient():
        post_id = await put_post(platform, Card(title="Heads up", text=again))
        row = await eventually(lambda: _attempted(platform, post_id), message="the first, failed attempt")
        assert row.status == "pending" and row.error
        async with platform.app.engine.begin() as conn:
            await conn.execute(chat_posts.update().where(chat_posts.c.id == post_id).values(next_at=0.0))
        platform.app.outbox.wake()
        post = await post_done(platform, post_id)
        assert post.status == "sent", post.error
        assert [m.ref for m in await platform.messages(again)] == [post.message_ref]


async def _attempted(platform: Platform, post_id: int) -> Any:
    async with platform.app.engine.connect() as conn:
        row = (await conn.execute(sa.select(chat_posts).where(chat_posts.c.id == post_id))).first()
    return row if row is not None and row.attempts >= 1 else None


async def test_a_delivery_error_says_whether_a_retry_helps(platform: Platform) -> None:
    card = Card(title="Hello", text=token())
    with pytest.raises(DeliveryError) as refused:
        await platform.adapter.post(platform.refused, card, f"sb-post-refused-{token()}")
    assert refused.value.permanent, refused.value.message  # no access: a retry cannot help
    assert refused.value.hint, "a permanent refusal says what the operator should change"
    if platform.transient():
        with pytest.raises(DeliveryError) as later:
            await platform.adapter.post(platform.channel, card, f"sb-post-later-{token()}")
        assert not later.value.permanent, later.value.message  # the platform is busy or down: retry
    assert await platform.messages(card.text) == []
