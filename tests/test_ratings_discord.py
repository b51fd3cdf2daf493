"""Rating buttons on Discord: the real discord.py client against the fake Discord (the harness of
tests/test_discord.py), after the assistant finished a conversation in a support channel's thread."""

from __future__ import annotations

from typing import Any

from cards.conversation_card import RATINGS
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, ToolCalls
from tests.test_discord import apps, custom_ids, db_url, fake
from tests.test_discord_conversations import button, llm, start, told

__all__ = ["apps", "db_url", "fake", "llm"]  # the harnesses' fixtures, used by name below


async def test_the_user_rates_once_and_nobody_else_can(fake: FakeDiscord, apps: Any, llm: FakeOpenAI) -> None:
    app = await start(apps, llm, support_channels=["#help"])
    llm.script(ToolCalls.one("finish", {"resolution": "Explained /workflow list."}))
    first = await fake.say(p.ALICE, p.HELP, "what can I run?")
    thread = first["id"]

    def rating() -> Any:
        found = [m for m in fake.bot_messages(thread) if any(":rate_" in c for c in custom_ids(m))]
        return found[0] if found else None

    message = await fake.until(rating, 10)
    assert [c.rsplit(":", 1)[1] for c in custom_ids(message)] == list(RATINGS)
    bob = await fake.click(button(message, "rate_one"), message, user=p.BOB)
    assert await told(fake, bob) == "Only the person this conversation was with can rate it."
    mine = await fake.click(button(message, "rate_three"), message, user=p.ALICE)
    assert await told(fake, mine) == "Thanks for rating this conversation 3 of 5."
    again = await fake.click(button(message, "rate_five"), message, user=p.ALICE)
    assert (await told(fake, again)).startswith("You rated this conversation 3 of 5 at ")
    assert app.conversations is not None
    rows, _, _ = await app.conversations.store.figures_since(0.0)
    assert [r.rating for r in rows] == [3]
