"""Crash tests for chat delivery: `switchboard run` is killed with SIGKILL around a chat post, restarted,
and the fake Slack API counts what arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.storage.database import create_engine
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, outbox_settled, workflow
from tests.slack_bot_process import Bot

TINY = """
name: tiny
steps:
  hello: {notify: {text: "hello from tiny"}}
"""


@pytest.fixture
async def slack(db_url: str, workflows_dir: Path) -> AsyncIterator[tuple[FakeSlack, Bot, SlackSender]]:
    workflow(TINY, workflows_dir)
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        bot = Bot(fake, db_url, workflows_dir)
        sender = SlackSender(fake, f"http://127.0.0.1:{bot.port}/slack/events")
        try:
            yield fake, bot, sender
        finally:
            bot.stop()
            await sender.close()


async def slash(sender: SlackSender, text: str) -> None:
    answer = await sender.form(
        {
            "command": "/workflow",
            "text": text,
            "user_id": "U0ALICE",
            "user_name": "alice",
            "team_id": "T0TEAM",
            "channel_id": "C0OPS",
            "channel_name": "ops",
            "trigger_id": sender.fake.trigger(),
            "response_url": f"{sender.fake.url}/respond/1",
        }
    )
    assert answer.status == 200


def cards(fake: FakeSlack) -> list[dict[str, Any]]:
    """Top-level messages in #ops carrying a status card key."""
    return [
        m
        for m in fake.channel_messages("C0OPS")
        if m.get("thread_ts") in (None, m["ts"]) and _key(m).startswith("sb-card-")
    ]


def _key(message: dict[str, Any]) -> str:
    return str((message.get("metadata") or {}).get("event_payload", {}).get("key", ""))


async def test_kill_between_state_change_and_post_delivers_once_after_restart(slack: Any) -> None:
    fake, bot, sender = slack
    fake.fail("chat.postMessage", times=10_000, status=429, retry_after=5)  # Slack says "later"
    await bot.start()
    await slash(sender, "run tiny")

    async def refused() -> bool:
        return bool(fake.calls_to("chat.postMessage"))

    await eventually(refused)  # the run's state change and its post are committed; the post is not delivered
    bot.kill()
    assert cards(fake) == []
    fake.heal("chat.postMessage")
    await bot.start()

    async def delivered() -> bool:
        return len(fake.channel_messages("C0OPS")) >= 3  # paced at one message a second per channel

    await eventually(delivered)
    await settled(bot)  # the outbox has nothing left to send: a duplicate would have to be on its way by now
    keys = [_key(m) for m in fake.channel_messages("C0OPS")]
    assert len(keys) == len(set(keys)) == 3  # the card, the notify reply, the final reply: once each


async def test_kill_after_slack_accepted_a_post_does_not_post_it_twice(slack: Any) -> None:
    fake, bot, sender = slack
    fake.holds["chat.postMessage"] = 60  # Slack stores the message, but the answer never reaches the bot
    await bot.start()
    await slash(sender, "run tiny")
    await eventually(lambda: len(cards(fake)) == 1, message="the card to reach Slack")
    bot.kill()  # the bot cannot know whether its card went out
    fake.heal("chat.postMessage")
    await bot.start()

    async def finished() -> bool:
        return len(fake.channel_messages("C0OPS")) >= 3

    await eventually(finished)
    await settled(bot)
    assert len(cards(fake)) == 1  # found by its metadata key after the restart, never posted again
    assert len(fake.delivered("chat.postMessage")) == 3
    keys = [_key(m) for m in fake.channel_messages("C0OPS")]
    assert len(keys) == len(set(keys))


async def settled(bot: Bot) -> None:
    """Wait until the bot's outbox (read from its database) has sent everything it holds."""
    engine = create_engine(bot.db_url)
    try:
        await eventually(lambda: outbox_settled(engine), 30, "the outbox to have nothing left to send")
    finally:
        await engine.dispose()
