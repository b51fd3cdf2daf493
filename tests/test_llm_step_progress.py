"""An llm step's answer streams into its run's thread, coalesced: one message (a card row of its own, in
the thread of the run's status card) written at most once a second while the text comes, and once more
with the whole text; the status card only says "✎ step is writing… see thread", and no event is stored
per piece. The real runtime, and the real openai client against the fake server streaming a word every
0.05 s."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from bot.runtime.llm_threads import THREAD_EVERY
from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage.tables import chat_cards, events
from engine.activities import llm
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import eventually, finished, workflow
from tests.test_status_cards import ORIGIN, card_of

WORDS = " ".join(f"word{n}" for n in range(40))  # about 2 s of writing, in 41 pieces
FLOW = "name: note\nsteps:\n  write: {llm: {prompt: tell me everything}}\n"
SECRET_FLOW = (
    "name: note\nsecrets: [TOKEN]\nsteps:\n"
    "  write: {llm: {prompt: tell me everything}, retry: {attempts: 2, backoff: fixed, initial: 0.1}}\n"
)


def writing(card: dict[str, Any]) -> str | None:
    lines = [c for c in card.get("context", []) if "is writing" in c]
    return lines[0] if lines else None


async def thread_rows(runtime: Runtime, run_id: str) -> list[Any]:
    query = (
        sa.select(chat_cards).where(chat_cards.c.key.startswith(f"llm:{run_id}:")).order_by(chat_cards.c.key)
    )
    async with runtime.store.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_the_llm_step_writes_into_the_thread_at_most_once_a_second(
    make_runtime: Callable[..., Any],
) -> None:
    async with FakeOpenAI(chunk_delay=0.05) as fake:
        runtime: Runtime = await make_runtime(
            card_update_interval=0.2, openai_api_key=SecretStr("k"), openai_base_url=fake.base_url
        )
        install(runtime)
        fake.script(Text(WORDS))
        began = time.monotonic()
        started = await runtime.submit(workflow(FLOW), {}, "alice", meta={"origin": ORIGIN})
        run_id = started.run_id

        async def partial() -> tuple[str, Any] | None:
            card, rows = await card_of(runtime, run_id), await thread_rows(runtime, run_id)
            line = writing(card.card) if card is not None else None
            if line is None or len(rows) != 1 or "word39" in rows[0].card["text"]:
                return None
            return line, rows[0]

        line, first = await eventually(partial, timeout=15, message="the message showing part of the text")
        row = await finished(runtime, run_id)
        span = time.monotonic() - began
        await llm.close_clients()
    assert row.status == "succeeded"
    assert line == "✎ write is writing… see thread"  # the card points to the thread, it does not stream
    assert first.key == f"llm:{run_id}:write:1" and first.parent_key == f"run:{run_id}"
    assert first.card["text"].startswith("word0") and first.card["text"].endswith(" …")
    [message] = await thread_rows(runtime, run_id)
    assert message.card["text"] == WORDS  # the whole text, once, in its last version
    assert message.card["context"][0].startswith("✎ write · 40 tokens")
    # Written at most once per THREAD_EVERY while the text came, plus the end: never once per piece.
    assert message.version <= math.ceil(span / THREAD_EVERY) + 1, (message.version, span)
    assert message.version < 41
    card = await card_of(runtime, run_id)
    assert writing(card.card) is None and card.card["status"] == "succeeded"
    assert card.version <= 6, card.version  # first commit, the step, "is writing" once, the end
    async with runtime.store.engine.connect() as conn:
        kinds = (
            (await conn.execute(sa.select(events.c.type).where(events.c.run_id == run_id))).scalars().all()
        )
    assert len(kinds) < 10 and "step_progress" not in kinds, kinds  # no event per piece


async def test_a_failed_attempt_keeps_its_text_and_the_retry_writes_a_message_of_its_own(
    make_runtime: Callable[..., Any], monkeypatch: Any
) -> None:
    monkeypatch.setenv("TOKEN", "hunter2hunter2")
    async with FakeOpenAI(chunk_delay=0.02) as fake:
        runtime: Runtime = await make_runtime(
            card_update_interval=0.2, openai_api_key=SecretStr("k"), openai_base_url=fake.base_url
        )
        install(runtime)
        fake.script(Text("the key is hunter2hunter2 and then", cut_after=6), Text("all is well"))
        started = await runtime.submit(workflow(SECRET_FLOW), {}, "alice", meta={"origin": ORIGIN})
        row = await finished(runtime, started.run_id)
        await llm.close_clients()
    assert row.status == "succeeded"
    first, second = await thread_rows(runtime, started.run_id)
    assert first.key.endswith(":write:1") and second.key.endswith(":write:2")
    assert "hunter2" not in first.card["text"] and "***" in first.card["text"]  # masked, like the outputs
    assert "attempt 1 failed" in first.card["context"][0] and "broke off" in first.card["context"][0]
    assert second.card["text"] == "all is well"
