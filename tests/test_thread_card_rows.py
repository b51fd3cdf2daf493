"""The statements that keep an llm step's thread message across a crash, through the journal on both
databases: a note replaces the card of a row that exists (and adds none), and a posted row moves to the
next attempt's key, unless it is not posted yet or that key is taken."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.storage.cards import card_note, card_rekey, card_row, card_upsert
from bot.storage.database import create_engine, migrate
from bot.storage.journal import Batch, Journal
from bot.storage.tables import chat_cards
from cards.model import Card


async def test_a_note_and_a_new_key_for_a_posted_message(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    journal = Journal(engine)
    journal.start()
    try:
        first = Batch()
        upsert = card_upsert(engine)
        for key in ("llm:r:write:1", "llm:r:other:1", "llm:r:both:1"):
            row = card_row(key, "slack", "C0OPS", Card(title="", text=f"{key} text"), 1.0, "run:r")
            first.add(upsert, row)
        first.add(
            upsert, card_row("llm:r:both:2", "slack", "C0OPS", Card(title="", text="taken"), 1.0, "run:r")
        )
        await journal.write(first)
        async with engine.begin() as conn:
            await conn.execute(
                chat_cards.update()
                .where(chat_cards.c.key.in_(["llm:r:write:1", "llm:r:both:1"]))
                .values(message_ref="C0OPS:1.0", sent_version=1)
            )
        note, rekey = card_note(), card_rekey()
        second = Batch()
        noted = Card(title="", text="interrupted").to_dict()
        for key in ("llm:r:write:1", "llm:r:other:1", "llm:r:both:1", "llm:r:never:1"):
            second.add(note, {"_key": key, "_card": noted, "_at": 2.0})
            second.add(rekey, {"_key": key, "_new": key[:-1] + "2"})
        await journal.write(second)
        async with engine.connect() as conn:
            rows = {r.key: r for r in (await conn.execute(sa.select(chat_cards))).all()}
    finally:
        await journal.close()
        await engine.dispose()
    moved: Any = rows["llm:r:write:2"]  # posted: the next attempt edits its message
    assert "llm:r:write:1" not in rows and moved.message_ref == "C0OPS:1.0"
    assert moved.card["text"] == "interrupted" and moved.version == 2 and moved.parent_key == "run:r"
    assert rows["llm:r:other:1"].card["text"] == "interrupted"  # not posted: keeps its key (found by it)
    assert "llm:r:other:2" not in rows
    assert rows["llm:r:both:1"].card["text"] == "interrupted"  # the next key is taken: stays put
    assert rows["llm:r:both:2"].card["text"] == "taken"
    assert "llm:r:never:1" not in rows and "llm:r:never:2" not in rows  # a note adds no row
