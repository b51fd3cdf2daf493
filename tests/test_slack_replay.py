"""A signed Slack request is executed once: replays of the same bytes (same signature and timestamp) are
acked and ignored, sent one after another or five at once, with or without Slack's retry headers.

The real Bolt app on the real server, signed requests over HTTP, the fake Slack Web API; the requests
seen are kept in SQLite, in PostgreSQL, or in Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from pydantic import SecretStr

from bot.config import Settings
from bot.process import App, start_app, stop_app
from bot.storage.database import create_engine, migrate
from bot.storage.dedupe import REQUEST_TTL, make_request_guard
from bot.storage.journal import Journal
from bot.storage.tables import runs, seen_requests
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import REDIS_URL, eventually, workflow

FORM = "application/x-www-form-urlencoded"
ONCE = """
name: once
steps:
  hello: {notify: {text: "hello once"}}
"""
REQUEST_KEYS = "switchboard:request:slack:"


class Harness:
    def __init__(self, fake: FakeSlack, app: App, send: SlackSender) -> None:
        self.fake, self.app, self.send = fake, app, send
        self.stamps: list[str] = []

    async def run_count(self) -> int:
        async with self.app.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(runs))).scalar_one())

    def answered(self, user: str) -> list[dict[str, object]]:
        return [e for e in self.fake.ephemerals if e["user"] == user]


@pytest.fixture(params=["database", "redis"])
async def slack(request: pytest.FixtureRequest, db_url: str, workflows_dir: Path) -> AsyncIterator[Harness]:
    redis_url = REDIS_URL if request.param == "redis" else None
    workflow(ONCE, workflows_dir)
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0BOB", "bob")
        settings = Settings(
            database_url=db_url,
            workflows_dir=workflows_dir,
            port=0,
            console=False,
            slack_bot_token=SecretStr(fake.token),
            slack_signing_secret=SecretStr(fake.signing_secret),
            slack_api_url=fake.base_url,
            redis_url=redis_url,
            poll_interval=0.05,
            kill_grace=0.5,
        )
        app = await start_app(settings)
        harness = Harness(fake, app, SlackSender(fake, f"{app.url}/slack/events"))
        try:
            yield harness
        finally:
            await harness.send.close()
            await stop_app(app, grace=0.5, flush=0.5)
            if redis_url:  # leave nothing behind in the shared Redis
                client = aioredis.from_url(redis_url)
                for stamp in harness.stamps:
                    keys = [k async for k in client.scan_iter(f"{REQUEST_KEYS}{stamp}:*")]
                    if keys:
                        await client.delete(*keys)
                await client.aclose()


async def marker_answered(slack: Harness, seen: int) -> None:
    """A later, different command: once it is answered, every copy sent before it has been handled."""
    assert (await slack.send.command("help", user="U0BOB")).status == 200
    await eventually(lambda: len(slack.answered("U0BOB")) > seen, message="the answer to the marker")


async def test_a_replayed_slash_command_starts_one_run_sent_in_turn_or_five_at_once(slack: Harness) -> None:
    stamp = int(time.time())
    slack.stamps.append(str(stamp))
    body = slack.send.command_body("run once")
    signed = slack.send.sign(body, stamp)
    retry = {**signed, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    answers = [await slack.send.send(body, FORM, headers=h) for h in (signed, retry, signed)]
    assert [a.status for a in answers] == [200, 200, 200]  # acknowledged, so no one sends it again
    await eventually(lambda: slack.answered("U0ALICE"), message="the run's start to be answered")
    await marker_answered(slack, 0)
    assert await slack.run_count() == 1
    assert len(slack.answered("U0ALICE")) == 1  # the copies got no reply either

    other = slack.send.command_body("run once")
    at_once = slack.send.sign(other, stamp)
    copies = await asyncio.gather(*(slack.send.send(other, FORM, headers=at_once) for _ in range(5)))
    assert [a.status for a in copies] == [200] * 5
    await eventually(lambda: len(slack.answered("U0ALICE")) == 2, message="the second run's start")
    await marker_answered(slack, 1)
    assert await slack.run_count() == 2  # one for each distinct signed request
    assert len(slack.answered("U0ALICE")) == 2


@pytest.mark.parametrize("through", ["own transaction", "journal"])
async def test_the_database_keeps_a_request_for_ten_minutes_and_prunes_it_after(
    db_url: str, through: str
) -> None:
    engine = create_engine(db_url)
    journal = Journal(engine)
    journal.start()
    try:
        await migrate(engine)
        guard = make_request_guard(engine, None, journal if through == "journal" else None)
        assert await guard.first("slack:1800000000:v0=abc", 1000.0)
        assert not await guard.first("slack:1800000000:v0=abc", 1000.0 + REQUEST_TTL - 1)
        assert await guard.first("slack:1800000001:v0=def", 1000.0 + REQUEST_TTL + 1)  # prunes the old one
        async with engine.connect() as conn:
            keys = (await conn.execute(sa.select(seen_requests.c.key))).scalars().all()
        assert keys == ["slack:1800000001:v0=def"]
    finally:
        await journal.close()
        await engine.dispose()
