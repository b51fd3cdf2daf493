"""kill -9 while an llm step streams into its run's thread: `switchboard run` against the fake Slack API
(or the fake Discord) and the fake OpenAI server is killed mid-answer and started again. The step runs
again (attempt 2), and its text goes into the same thread message, which is edited, never posted a
second time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.storage.database import create_engine
from bot.storage.tables import chat_cards, console_messages, runs
from tests import bot_process
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, outbox_settled, workflow
from tests.slack_bot_process import Bot
from tests.test_outbox_crash import _key, slash

FIRST = " ".join(f"first{n}" for n in range(200))  # 20 s of writing: the kill comes long before its end
AGAIN = " ".join(f"again{n}" for n in range(20))
NOTE = "name: note\nsteps:\n  write: {llm: {prompt: tell me everything}}\n"


@pytest.fixture
async def bot(
    db_url: str, workflows_dir: Path
) -> AsyncIterator[tuple[FakeSlack, FakeOpenAI, Bot, SlackSender]]:
    workflow(NOTE, workflows_dir)
    async with FakeSlack() as fake, FakeOpenAI(chunk_delay=0.1) as model:
        fake.add_user("U0ALICE", "alice")
        env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": model.base_url}
        process = Bot(fake, db_url, workflows_dir, **env)
        sender = SlackSender(fake, f"http://127.0.0.1:{process.port}/slack/events")
        try:
            yield fake, model, process, sender
        finally:
            process.stop()
            await sender.close()


async def llm_rows(engine: Any) -> list[Any]:
    query = sa.select(chat_cards).where(chat_cards.c.key.startswith("llm:"))
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def edited(engine: Any) -> Any:
    """The llm message once it is posted and edited at least once (part of the first answer shown)."""
    found = await llm_rows(engine)
    return found[0] if found and found[0].message_ref and found[0].sent_version >= 2 else None


async def succeeded(engine: Any, run_id: str) -> bool:
    async with engine.connect() as conn:
        status = (await conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id))).scalar()
    return status == "succeeded"


async def test_a_step_killed_mid_answer_writes_again_into_the_same_message(bot: Any) -> None:
    fake, model, process, sender = bot
    model.script(Text(FIRST), Text(AGAIN))
    engine = create_engine(process.db_url)
    try:
        await process.start()
        await slash(sender, "run note")

        before = await eventually(lambda: edited(engine), 30, "the llm message posted and edited once")
        run_id = before.key.split(":")[1]
        process.kill()
        await process.start()
        await eventually(lambda: succeeded(engine, run_id), 60, "the resumed run to succeed")
        await eventually(lambda: outbox_settled(engine), 30, "the outbox to have nothing left to send")
        [row] = await llm_rows(engine)
    finally:
        await engine.dispose()
    assert row.key == f"llm:{run_id}:write:2" and row.message_ref == before.message_ref
    messages = [m for m in fake.channel_messages("C0OPS") if _key(m).startswith("sb-card-llm:")]
    assert len(messages) == 1, messages  # the interrupted attempt's message, taken over by the rerun
    [message] = messages
    assert f"C0OPS:{message['ts']}" == row.message_ref and message.get("thread_ts") != message["ts"]
    assert message["text"] == AGAIN  # the whole second answer; nothing of the first is left
    card = next(m for m in fake.channel_messages("C0OPS") if m["ts"] == message["thread_ts"])
    assert _key(card) == f"sb-card-run:{run_id}"  # a reply under the run's status card
    replies = [m.get("text", "") for m in fake.channel_messages("C0OPS") if m.get("thread_ts") == card["ts"]]
    assert any("interrupted by a crash" in text for text in replies), replies


async def test_on_discord_too_the_rerun_edits_the_message_the_killed_process_posted(
    db_url: str, workflows_dir: Path
) -> None:
    workflow(NOTE, workflows_dir)
    fake = FakeDiscord()
    await fake.start()
    engine = create_engine(db_url)
    try:
        async with FakeOpenAI(chunk_delay=0.1) as model:
            model.script(Text(FIRST), Text(AGAIN))
            env = {
                "DISCORD_TOKEN": fake.token,
                "SWITCHBOARD_DISCORD_API_URL": fake.api_url,
                "SWITCHBOARD_DISCORD_GATEWAY_URL": fake.gateway_url,
                "OPENAI_API_KEY": "k",
                "OPENAI_BASE_URL": model.base_url,
            }
            process = bot_process.Bot(db_url, workflows_dir, **env)
            try:
                await process.start()
                await eventually(lambda: fake.identified, 30, "the bot on the gateway")
                await fake.slash("run", name="note")
                before = await eventually(
                    lambda: edited(engine), 30, "the llm message posted and edited once"
                )
                run_id = before.key.split(":")[1]
                process.kill()
                await process.start()
                await eventually(lambda: succeeded(engine, run_id), 60, "the resumed run to succeed")
                await eventually(
                    lambda: outbox_settled(engine), 30, "the outbox to have nothing left to send"
                )
                [row] = await llm_rows(engine)
            finally:
                process.close()
    finally:
        await engine.dispose()
        await fake.stop()
    assert row.key == f"llm:{run_id}:write:2" and row.message_ref == before.message_ref
    written = [m for m in fake.messages.values() if ("first0" in json.dumps(m) or "again0" in json.dumps(m))]
    written = [m for m in written if "Outputs" not in json.dumps(m)]  # the run's outcome lists its outputs
    assert len(written) == 1, written  # one message, posted by the killed process, edited by the rerun
    [message] = written
    assert row.message_ref == f"{message['channel_id']}:{message['id']}"
    assert AGAIN in json.dumps(message) and "first0" not in json.dumps(message)
    starters = {str(t["id"]) for t in fake.threads.values()}
    assert str(message["channel_id"]) in starters  # in the thread of the run's status card


async def test_on_the_console_too_the_rerun_edits_the_message_the_killed_process_posted(
    db_url: str, workflows_dir: Path
) -> None:
    workflow(NOTE, workflows_dir)
    engine = create_engine(db_url)
    try:
        async with FakeOpenAI(chunk_delay=0.1) as model:
            model.script(Text(FIRST), Text(AGAIN))
            env = {"SWITCHBOARD_CONSOLE": "true", "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": model.base_url}
            process = bot_process.Bot(db_url, workflows_dir, **env)
            try:
                await process.start()
                url = f"http://127.0.0.1:{process.port}"
                async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                    async with session.post("/auth/dev", json={"user": "alice"}) as res:
                        assert res.status == 200, await res.text()
                    async with session.get("/api/state") as res:
                        csrf = (await res.json())["csrf"]
                    command = {"channel": "ops", "text": "/workflow run note"}
                    async with session.post(
                        "/api/command", json=command, headers={"X-CSRF-Token": csrf}
                    ) as res:
                        assert res.status == 200, await res.text()
                before = await eventually(
                    lambda: edited(engine), 30, "the llm message posted and edited once"
                )
                run_id = before.key.split(":")[1]
                process.kill()
                await process.start()
                await eventually(lambda: succeeded(engine, run_id), 60, "the resumed run to succeed")
                await eventually(
                    lambda: outbox_settled(engine), 30, "the outbox to have nothing left to send"
                )
                [row] = await llm_rows(engine)
                async with engine.connect() as conn:
                    shown = (await conn.execute(sa.select(console_messages))).all()
            finally:
                process.close()
    finally:
        await engine.dispose()
    assert row.key == f"llm:{run_id}:write:2" and row.message_ref == before.message_ref
    written = [
        m for m in shown if m.card and ("first0" in json.dumps(m.card) or "again0" in json.dumps(m.card))
    ]
    written = [
        m for m in written if "Outputs" not in json.dumps(m.card)
    ]  # the run's outcome lists its outputs
    assert len(written) == 1, written  # one message, posted by the killed process, edited by the rerun
    [message] = written
    assert row.message_ref == str(message.id) and message.card["text"] == AGAIN
    [card] = [m for m in shown if m.key == f"sb-card-run:{run_id}"]
    assert message.thread_id == card.id  # in the thread of the run's status card
