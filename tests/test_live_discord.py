"""The assistant's answer streamed on Discord: the real discord.py client against the fake Discord, the
real openai client against the fake server streaming one word every 0.1 s. The message is posted with
the first words and edited at most once a second, by the fake's own record of when each edit came."""

from __future__ import annotations

from typing import Any

from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.test_discord import apps, db_url, fake
from tests.test_discord_conversations import answered, custom_ids, everything, start

__all__ = ["apps", "db_url", "fake"]  # the harness's fixtures, used by name below
WORDS = " ".join(f"word{n}" for n in range(30))  # 30 chunks, 0.1 s apart: about 3 s of writing


async def test_an_answer_is_posted_early_then_edited_at_most_once_a_second(
    fake: FakeDiscord, apps: Any
) -> None:
    async with FakeOpenAI(chunk_delay=0.1) as llm:
        await start(apps, llm)
        llm.script(Text(WORDS))
        await fake.dm(p.ALICE, "tell me everything")
        dm = fake.dms[p.ALICE]
        [reply] = await fake.until(lambda: answered(fake, dm), 15)
    assert WORDS in everything(reply) and custom_ids(reply)  # the stored reply, with its button
    [message] = fake.bot_messages(dm)  # one message: the preview became the reply
    assert message["id"] == reply["id"]
    edits, times = fake.edits[reply["id"]], fake.edited_at[reply["id"]]
    previews = [everything(e) for e in edits if not e.get("components")]
    # It grew while the model wrote: partial texts, each a longer beginning of the answer.
    assert previews and all("word0" in t and WORDS not in t for t in previews[:-1])
    # Coalesced: a handful of edits for 30 pieces, and at most one a second on the fake's clock.
    assert 2 <= len(edits) <= 8
    span = times[-1] - times[0]
    assert len(times) <= 1 + span / 0.9, f"{len(times)} edits in {span:.2f} s"


async def test_an_answer_that_breaks_off_is_marked_and_the_user_is_handed_over(
    fake: FakeDiscord, apps: Any
) -> None:
    async with FakeOpenAI(chunk_delay=0.1) as llm:
        await start(apps, llm, agents_channel=[])
        llm.script(Text(WORDS, cut_after=12))  # the server dies after 11 words
        await fake.dm(p.ALICE, "tell me everything")
        dm = fake.dms[p.ALICE]
        await fake.until(lambda: [m for m in fake.bot_messages(dm) if "in the queue" in everything(m)], 15)
        [preview] = await fake.until(
            lambda: [m for m in fake.bot_messages(dm) if "broke off" in everything(m)], 15
        )
    text = everything(preview)
    assert "word10" in text and "word11" not in text  # what had come is kept, and said to be cut
    assert "not available right now" in everything(fake.bot_messages(dm)[-1])
