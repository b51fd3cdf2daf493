"""An llm step's text in its run's thread, on each platform: the real process (``start_app``) with the
console, Slack (against the fake Slack API) or Discord (against the fake Discord), the real openai client
against the fake OpenAI server's streamed answers. The message is posted once, as a reply under the
run's status card, edited while the text comes (no more often than it is stored: at most once a
second), and ends with the whole text; a message a dead process may have posted is not posted twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.delivery.contract import Sent
from bot.runtime.llm_threads import THREAD_EVERY
from bot.storage.cards import card_row
from bot.storage.tables import chat_cards
from cards.model import Card
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import eventually, finished, outbox_settled, workflow
from tests.test_outbox_contract import (
    PLATFORMS,
    Platform,
    Shown,
    _console,
    _discord,
    _slack,
    card_sent,
    put_card,
    token,
)

WORDS = " ".join(f"word{n}" for n in range(40))  # about 2 s of writing, in 41 pieces
CARD = Card(title="", text="never shown")
FLOW = "name: note\nsteps:\n  write: {llm: {prompt: tell me everything}}\n"


@pytest.fixture(params=PLATFORMS)
async def streaming(
    request: pytest.FixtureRequest, tmp_path: Path, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Platform, FakeOpenAI]]:
    async with FakeOpenAI(chunk_delay=0.05) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        start = {"console": _console, "slack": _slack, "discord": _discord}[request.param]
        async for running in start(tmp_path, workflows_dir):
            yield running, fake


async def rows(platform: Platform, prefix: str) -> list[Any]:
    query = sa.select(chat_cards).where(chat_cards.c.key.startswith(prefix)).order_by(chat_cards.c.key)
    async with platform.app.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def written(platform: Platform) -> list[Shown]:
    """The messages showing the model's text (the run's outcome, which lists its outputs, aside)."""
    return [m for m in await platform.messages("word0") if "Outputs" not in m.text]


async def test_an_llm_step_streams_into_its_runs_thread(streaming: tuple[Platform, FakeOpenAI]) -> None:
    platform, fake = streaming
    app = platform.app
    fake.script(Text(WORDS))
    origin = {"platform": platform.name, "channel": platform.channel, "thread": None, "channel_name": "ops"}
    began = time.monotonic()
    started = await app.runtime.submit(workflow(FLOW), {}, "alice", meta={"origin": origin})
    run_id = started.run_id

    async def part_shown() -> list[Shown]:
        shown = await written(platform)
        return shown if shown and "word39" not in shown[0].text else []

    [partial] = await eventually(part_shown, message=f"{platform.name}: part of the text in the thread")
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    span = time.monotonic() - began
    await eventually(lambda: outbox_settled(app.engine), message="the outbox to have sent everything")
    [card] = await rows(platform, f"run:{run_id}")
    [message] = await rows(platform, f"llm:{run_id}:")
    [shown] = await written(platform)  # one message holds the text: the card only points to it
    assert shown.ref == partial.ref == message.message_ref  # posted once, then edited in place
    assert shown.parent == card.message_ref  # a reply under the run's status card
    assert "word39" in shown.text and message.card["text"] == WORDS
    # Stored (and so edited) at most once per THREAD_EVERY while the text came, plus the end.
    assert message.sent_version == message.version <= math.ceil(span / THREAD_EVERY) + 1, span
    assert card.version <= 6, card.version  # the status card is not redrawn per piece


async def test_a_thread_message_a_dead_process_posted_is_not_posted_again(
    streaming: tuple[Platform, FakeOpenAI],
) -> None:
    """A process posted the message, then died before recording it: the retry finds it by its key (the
    console, Slack) or re-sends with the same nonce (Discord), and edits it; never a second message."""
    platform, _ = streaming
    app = platform.app
    mark, said, later_text = token(), token(), token()
    parent = f"run:{mark}"
    await put_card(platform, parent, Card(title=f"Run {mark}", text="running"))
    posted = await card_sent(platform, parent, 1)
    key = f"llm:{mark}:write:1"
    gone = {"claimed_by": "gone-host:1:dead00", "claimed_at": 0.0, "next_at": 10.0**12, "post_tries": 1}
    row = {
        "key": key,
        "parent_key": parent,
        "platform": platform.name,
        "channel": platform.channel,
        "card": Card(title="", text=said).to_dict(),
        "version": 1,
        "sent_version": 0,
        "attempts": 0,
        "updated_at": 0.0,
        **gone,
    }
    async with app.engine.begin() as conn:
        await conn.execute(chat_cards.insert(), row)
    adapter = platform.adapter
    thread = await adapter.thread(Sent(posted.message_ref))  # as the dead process did, and stored
    first = await adapter.reply(thread, Card(title="", text=said), f"sb-card-{key}")
    async with app.engine.begin() as conn:
        await conn.execute(chat_cards.update().where(chat_cards.c.key == parent).values(thread_ref=thread))
        await conn.execute(
            chat_cards.update()
            .where(chat_cards.c.key == key)
            .values(next_at=0.0, card=Card(title="", text=f"{said} {later_text}").to_dict(), version=2)
        )
    app.outbox.wake()
    done = await card_sent(platform, key, 2)
    assert done.message_ref == first.ref
    [shown] = await platform.messages(said)
    assert shown.ref == first.ref and later_text in shown.text and shown.parent == posted.message_ref


async def test_a_thread_message_whose_card_is_never_posted_is_given_up_saying_why(
    streaming: tuple[Platform, FakeOpenAI],
) -> None:
    platform, _ = streaming
    app = platform.app
    mark = token()
    parent, key = f"run:{mark}", f"llm:{mark}:write:1"
    async with app.engine.begin() as conn:
        given_up = {"sent_version": 1, "error": "not_in_channel (invite the bot)"}
        await conn.execute(
            chat_cards.insert(), {**card_row(parent, platform.name, "C0GONE", CARD, 0.0), **given_up}
        )
        await conn.execute(
            chat_cards.insert(), card_row(key, platform.name, platform.channel, CARD, 0.0, parent)
        )
    app.outbox.wake()

    async def settled() -> Any:
        [row] = await rows(platform, key)
        return row if row.sent_version >= 1 else None

    row = await eventually(settled, message="the thread message to be given up")
    assert (
        row.message_ref is None
        and row.error == "its thread's card was not delivered: not_in_channel (invite the bot)"
    )
    assert await platform.messages("never shown") == []
