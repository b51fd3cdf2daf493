"""Console messages on SQLite: ids handed out in the process, rows committed with the journal's group commit.

Each answer of /api/command or /api/message means its message is committed: killed with SIGKILL right
after the last answer, the file holds every message answered, and the process started again numbers its
next message after them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.platforms.console.adapter import ConsoleAdapter
from bot.process import App, start_app, stop_app
from bot.storage.database import create_engine
from bot.storage.tables import console_messages
from tests.slack_bot_process import ChildBot
from tests.test_console_api import Client, console_settings, write_workflows


class ConsoleBot(ChildBot):
    """`switchboard run` with the console only, in a child process on a SQLite file."""

    def __init__(self, db: Path, workflows: Path) -> None:
        super().__init__(f"sqlite+aiosqlite:///{db}", workflows, SWITCHBOARD_CONSOLE="true")


def stored(db: Path) -> dict[int, tuple[str, str, str]]:
    """Every console message in the file: id -> (channel, author, text), read with the stdlib sqlite3."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, channel, author, text FROM console_messages").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


@pytest.fixture
async def bot(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[ConsoleBot]:
    write_workflows(workflows_dir)
    started = ConsoleBot(tmp_path / "console.db", workflows_dir)
    try:
        yield started
    finally:
        started.stop()


async def test_every_answered_message_survives_kill_9_and_numbering_continues(
    bot: ConsoleBot, tmp_path: Path
) -> None:
    db = tmp_path / "console.db"
    await bot.start()
    async with Client(bot.url) as http:
        users = ["alice", "bob", "carol"]
        for user in users:
            await http.sign_in(user)

        async def one(i: int) -> tuple[int, str, str]:
            user = users[i % len(users)]
            if i % 2:
                said = await http.post("/api/message", {"channel": "ops", "text": f"note {i}"}, user=user)
                return said["message"]["id"], user, f"note {i}"
            answer = await http.command("/workflow help", user=user)
            return answer["message"]["id"], "Switchboard", answer["message"]["text"]

        answered = await asyncio.gather(*(one(i) for i in range(60)))  # at once: they share commits
        bot.kill()  # the moment the last answer is in

    ids = [message_id for message_id, _, _ in answered]
    assert len(set(ids)) == len(ids)
    rows = stored(db)
    for message_id, author, text in answered:
        assert rows[message_id] == ("ops", author, text)

    await bot.start()  # numbering goes on after the newest stored id, whatever the process knew
    async with Client(bot.url) as http:
        after = await http.post("/api/message", {"channel": "ops", "text": "after the restart"})
        assert after["message"]["id"] == max(rows) + 1
        history = await http.state("bob")
        assert [m["id"] for m in history] == sorted(m["id"] for m in history)
        assert history[-1]["text"] == "after the restart"


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def test_messages_are_numbered_in_the_order_they_are_added(app: App) -> None:
    async with Client(app.url) as http:
        first = await http.post("/api/message", {"channel": "ops", "text": "one"})
        said = [
            (await http.post("/api/message", {"channel": "ops", "text": t}, user="bob"))["message"]["id"]
            for t in ("two", "three", "four")
        ]
        assert said == [first["message"]["id"] + n for n in (1, 2, 3)]
        reply = await http.post(
            "/api/message", {"channel": "ops", "text": "in its thread", "thread": said[0]}
        )
        assert reply["message"]["thread_id"] == said[0]
        assert [m["text"] for m in await http.state("carol")] == [
            "one",
            "two",
            "three",
            "four",
            "in its thread",
        ]


async def test_an_id_taken_behind_the_process_back_is_skipped_not_overwritten(app: App) -> None:
    console = app.platforms["console"]
    assert isinstance(console, ConsoleAdapter)
    async with Client(app.url) as http:
        first = (await http.post("/api/message", {"channel": "ops", "text": "first"}))["message"]["id"]
        other = create_engine(app.settings.database_url)  # another writer of the file takes the next id
        try:
            async with other.begin() as conn:
                await conn.execute(
                    console_messages.insert().values(
                        id=first + 1,
                        channel="ops",
                        author="elsewhere",
                        text="written elsewhere",
                        created_at=1.0,
                        updated_at=1.0,
                    )
                )
        finally:
            await other.dispose()
        second = (await http.post("/api/message", {"channel": "ops", "text": "second"}))["message"]["id"]
        assert second == first + 2
        async with app.engine.connect() as conn:
            rows = (await conn.execute(sa.select(console_messages.c.id, console_messages.c.text))).all()
        assert sorted(rows) == [(first, "first"), (first + 1, "written elsewhere"), (second, "second")]
