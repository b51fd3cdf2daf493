"""Chat delivery shared by two `switchboard run` processes on one PostgreSQL (pacing in the database, or in
Redis), against the fake Slack: what a channel sees, counted from the fake's own records.

Two processes on one SQLite file are refused (issue 10), so SQLite's pacing is checked with two pacers on
one file in ``test_pacing.py``, and the hung post with one process here.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.process import start_app, stop_app
from bot.storage.cards import card_row, card_upsert, post_row
from bot.storage.database import create_engine
from bot.storage.tables import chat_cards, chat_posts
from cards.model import Card
from tests.fakes.slack_api import Call, FakeSlack
from tests.helpers import REDIS_URL, eventually, outbox_settled
from tests.slack_bot_process import Bot

SECOND_TOKEN = "xoxb-fake-token-second-process"  # the fake tells the two processes apart by token
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # one SQLite file, one process
# Two posts into one channel are at least 1 s apart when they leave, less the bound on a slot's take
# (``LATE_TAKE``); the fake notes each a moment later, after the loopback and its own event loop.
TOLERANCE = 0.1


@pytest.fixture(params=["database", "redis"])
async def pair(
    request: pytest.FixtureRequest, db_url: str, workflows_dir: Path
) -> AsyncIterator[tuple[FakeSlack, list[Bot], AsyncEngine, str]]:
    """Two bot processes on one PostgreSQL database, pacing in the database or in Redis, and a new channel."""
    redis = {"REDIS_URL": REDIS_URL} if request.param == "redis" else {}
    async with FakeSlack() as fake:
        channel = f"C0{secrets.token_hex(4).upper()}"  # its own pacing lane, in a Redis other tests share
        fake.channels[channel] = "pacing"
        fake.tokens.add(SECOND_TOKEN)
        bots = [
            Bot(fake, db_url, workflows_dir, **redis),
            Bot(fake, db_url, workflows_dir, SLACK_BOT_TOKEN=SECOND_TOKEN, **redis),
        ]
        engine = create_engine(db_url)
        try:
            await asyncio.gather(*(bot.start() for bot in bots))
            yield fake, bots, engine, channel
        finally:
            for bot in bots:
                bot.stop()
            await engine.dispose()


def gaps(calls: list[Call]) -> list[float]:
    """The time between each post the fake took and the next, in order."""
    times = sorted(c.at for c in calls)
    return [b - a for a, b in itertools.pairwise(times)]


def posts_in(fake: FakeSlack, channel: str) -> list[Call]:
    return [c for c in fake.delivered("chat.postMessage") if c.params.get("channel") == channel]


def key_of(message: dict[str, Any]) -> str:
    return str((message.get("metadata") or {}).get("event_payload", {}).get("key", ""))


async def put_card(engine: AsyncEngine, channel: str, key: str, text: str) -> None:
    async with engine.begin() as conn:
        card = Card(title=key, text=text, fallback=text)
        await conn.execute(card_upsert(engine), card_row(key, "slack", channel, card, 0.0))


@ON_POSTGRES
async def test_two_processes_post_at_most_once_a_second_into_one_channel(pair: Any) -> None:
    fake, _bots, engine, channel = pair
    notes = [Card(title="Note", text=f"note {i}", fallback=f"note {i}") for i in range(10)]
    rows = [post_row("slack", channel, None, note, 0.0) for note in notes]
    async with engine.begin() as conn:
        await conn.execute(chat_posts.insert(), rows)
    await eventually(lambda: outbox_settled(engine), 60, "both processes to deliver the ten posts")
    posts = posts_in(fake, channel)
    assert sorted(str(c.params["text"]) for c in posts) == sorted(f"note {i}" for i in range(10))  # once each
    assert {c.token for c in posts} == {fake.token, SECOND_TOKEN}, "both processes took a share"
    assert min(gaps(posts)) >= 1.0 - TOLERANCE, [round(g, 3) for g in gaps(posts)]


@ON_POSTGRES
async def test_a_card_is_posted_once_while_two_processes_deliver_its_versions(pair: Any) -> None:
    fake, _, engine, channel = pair
    fake.delays["chat.postMessage"] = 0.3  # a post in flight while the other process reads the card
    keys = [f"run:{secrets.token_hex(3)}" for _ in range(8)]
    version = 0
    # Runs that move fast: every card changes again and again until each is on Slack, so whichever
    # process reads a card reads a version newer than the one the other process is posting.
    while not await _all_posted(engine, keys):
        for key in keys:
            await put_card(engine, channel, key, f"{key} v{version}")
        version += 1
    for key in keys:
        await put_card(engine, channel, key, f"{key} finished")
    await eventually(lambda: _all_sent(engine), 60, "every card at its newest version")
    shown = [m for m in fake.channel_messages(channel) if key_of(m).startswith("sb-card-")]
    assert sorted(key_of(m) for m in shown) == sorted(f"sb-card-{k}" for k in keys)  # one message per card
    assert all(m["text"].endswith("finished") for m in shown), [m["text"] for m in shown]  # none frozen


@ON_POSTGRES
async def test_a_card_whose_poster_died_mid_post_is_found_not_posted_again(pair: Any) -> None:
    fake, bots, engine, channel = pair
    fake.hang("chat.postMessage")  # Slack stores the card; its answer never comes
    key = f"run:{secrets.token_hex(3)}"
    await put_card(engine, channel, key, "running 0 of 5")
    await eventually(lambda: fake.hanging == 1, 30, "the first post to hang")
    claimant = await _claimant(engine, key)
    [poster] = [b for b in bots if b.proc is not None and f":{b.proc.pid}:" in claimant]
    poster.kill()  # the run and its card move to the other process
    await put_card(engine, channel, key, "running 3 of 5")
    await eventually(lambda: _all_sent(engine), 60, "the other process to take the card over")
    [card] = [m for m in fake.channel_messages(channel) if key_of(m) == f"sb-card-{key}"]
    assert card["text"].endswith("running 3 of 5")  # found, and edited in place


def one_process(tmp_path: Path, workflows_dir: Path, fake: FakeSlack, **values: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}",
        workflows_dir=workflows_dir,
        port=0,
        console=False,
        slack_bot_token=SecretStr(fake.token),
        slack_signing_secret=SecretStr(fake.signing_secret),
        slack_api_url=fake.base_url,
        **values,
    )


async def test_a_hung_post_does_not_hold_up_its_channel(tmp_path: Path, workflows_dir: Path) -> None:
    async with FakeSlack() as fake:
        app = await start_app(one_process(tmp_path, workflows_dir, fake, delivery_timeout=4.0))
        try:
            fake.hang("chat.postMessage")
            first = await _post(app.engine, "the first post")
            app.outbox.wake()
            await eventually(lambda: fake.hanging == 1, 20, "the first post to hang")
            second = await _post(app.engine, "the second post")
            app.outbox.wake()
            await eventually(lambda: _sent(app.engine, second), 20, "the second post, behind the hung one")
            [hung, later] = posts_in(fake, "C0OPS")
            assert hung.params["text"] == "the first post" and later.params["text"] == "the second post"
            assert hung.ended is None or later.at < hung.ended  # sent while the first still hung

            # The hung post timed out and was retried: it was found on Slack, never posted twice.
            row = await eventually(lambda: _sent(app.engine, first), 30, "the hung post to be settled")
            texts = [m["text"] for m in fake.channel_messages("C0OPS")]
            assert texts.count("the first post") == 1 and texts.count("the second post") == 1
            assert row.message_ref == f"C0OPS:{hung.answer['ts']}"
        finally:
            await stop_app(app, grace=0.5, flush=0.5)


async def test_a_card_edit_does_not_queue_behind_the_channels_posts(
    tmp_path: Path, workflows_dir: Path
) -> None:
    async with FakeSlack() as fake:
        app = await start_app(one_process(tmp_path, workflows_dir, fake, card_update_interval=0.0))
        try:
            await put_card(app.engine, "C0OPS", "run:edit", "running 0 of 5")
            app.outbox.wake()
            await eventually(lambda: _all_sent(app.engine), 20, "the card to be posted")
            for i in range(6):
                await _post(app.engine, f"note {i}")
            app.outbox.wake()
            await eventually(
                lambda: len(posts_in(fake, "C0OPS")) >= 2, 20, "the channel's posts to be going out"
            )
            await put_card(app.engine, "C0OPS", "run:edit", "running 3 of 5")
            app.outbox.wake()
            await eventually(lambda: outbox_settled(app.engine), 30, "the posts and the edit")
            [edit] = fake.delivered("chat.update")
            assert edit.params["text"] == "running 3 of 5"
            assert edit.at < posts_in(fake, "C0OPS")[-1].at  # in its own lane, not after the posts
        finally:
            await stop_app(app, grace=0.5, flush=0.5)


async def _post(engine: AsyncEngine, text: str) -> int:
    row = post_row("slack", "C0OPS", None, Card(title="Note", text=text, fallback=text), 0.0)
    async with engine.begin() as conn:
        return int((await conn.execute(chat_posts.insert().returning(chat_posts.c.id), row)).scalar_one())


async def _sent(engine: AsyncEngine, post_id: int) -> Any:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(chat_posts).where(chat_posts.c.id == post_id))).first()
    return row if row is not None and row.status == "sent" else None


async def _all_sent(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(chat_cards.c.version, chat_cards.c.sent_version))).all()
    return bool(rows) and all(r.sent_version >= r.version for r in rows)


async def _all_posted(engine: AsyncEngine, keys: list[str]) -> bool:
    async with engine.connect() as conn:
        query = sa.select(chat_cards.c.message_ref).where(chat_cards.c.key.in_(keys))
        refs = (await conn.execute(query)).scalars().all()
    return len(refs) == len(keys) and all(refs)


async def _claimant(engine: AsyncEngine, key: str) -> str:
    async with engine.connect() as conn:
        query = sa.select(chat_cards.c.claimed_by).where(chat_cards.c.key == key)
        return str((await conn.execute(query)).scalar_one())


async def test_a_long_retry_after_is_honoured_without_holding_the_channel(
    tmp_path: Path, workflows_dir: Path
) -> None:
    async with FakeSlack() as fake:
        app = await start_app(one_process(tmp_path, workflows_dir, fake))
        try:
            fake.fail("chat.postMessage", times=1, status=429, retry_after=30)
            first = await _post(app.engine, "the first post")
            app.outbox.wake()
            limited = await eventually(lambda: _attempted(app.engine, first), 20, "Slack to refuse it")
            assert limited.status == "pending" and "rate limited" in limited.error
            second = await _post(app.engine, "the second post")
            app.outbox.wake()
            sent = await eventually(lambda: _sent(app.engine, second), 20, "the second post")
            assert (
                limited.next_at > sent.sent_at
            )  # the first waits for Slack's Retry-After, the second did not
            assert len(fake.calls_to("chat.postMessage")) == 2  # one refusal, not a retry inside the call
        finally:
            await stop_app(app, grace=0.5, flush=0.5)


async def _attempted(engine: AsyncEngine, post_id: int) -> Any:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(chat_posts).where(chat_posts.c.id == post_id))).first()
    return row if row is not None and row.attempts >= 1 else None
