"""Conversations on Discord end to end: the real discord.py client against the fake Discord (tests/fakes),
which pushes what people write as MESSAGE_CREATE and their clicks as INTERACTION_CREATE, and the real
openai client against the fake OpenAI server (harness: tests/test_discord.py).

alice writes to the bot in her DM; bob is the agent, in #agents, where the handover cards go.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.delivery.contract import Sent
from bot.platforms.discord.adapter import DiscordAdapter
from bot.platforms.discord.client import SwitchboardBot
from bot.process import App
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import Json
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import finished, workflow
from tests.test_discord import apps, custom_ids, db_url, fake

__all__ = ["apps", "db_url", "fake"]  # the harness's fixtures, used by name below


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def start(apps: Any, llm: FakeOpenAI | None, **overrides: Any) -> App:
    values: dict[str, Any] = {
        "agents_channel": [f"discord:{p.AGENTS}"],
        "debounce": 0.2,
        "llm_retries": 0,
        "llm_timeout": 5.0,
    }
    if llm is not None:
        values.update(openai_api_key=SecretStr("k"), openai_base_url=llm.base_url)
    return await apps[0](**{**values, **overrides})  # type: ignore[no-any-return]


def everything(message: Json) -> str:
    return json.dumps([message["content"], message["embeds"]], ensure_ascii=False)


def saying(fake: FakeDiscord, channel: str, needle: str) -> list[Json]:
    return [m for m in fake.bot_messages(channel) if needle in everything(m)]


def answered(fake: FakeDiscord, channel: str) -> list[Json]:
    """The bot's messages in ``channel`` in their final form (a live preview has no buttons yet)."""
    return [m for m in fake.bot_messages(channel) if custom_ids(m)]


def handover_card(fake: FakeDiscord) -> Json | None:
    cards = [m for m in fake.bot_messages(p.AGENTS) if any(":claim" in c for c in custom_ids(m))]
    return cards[0] if cards else None


def button(message: Json, choice: str) -> str:
    [found] = [c for c in custom_ids(message) if c.endswith(f":{choice}")]
    return found


async def told(fake: FakeDiscord, interaction: Json) -> str:
    """What the clicker was told: the callback's message, else the first followup (or edited original)."""
    answer = await fake.answered(interaction)
    if answer["type"] == 4:
        return str(answer["data"].get("content", ""))
    return everything(await fake.followup(interaction))


async def confirmed(fake: FakeDiscord, custom_id: str, message: Json, user: str) -> Json:
    """Click a button that asks first (Resolve), then its confirm button; the confirm's interaction."""
    click = await fake.click(custom_id, message, user=user)
    question = await fake.answered(click)
    assert question["type"] == 4 and question["data"]["flags"] & 64, "asked first, ephemerally"
    prompt = fake.messages[fake.original[click["token"]]]
    [yes] = [c for c in custom_ids(prompt) if c.startswith("sb-ui:yes:")]
    return await fake.click(yes, prompt, user=user)


async def test_a_dm_is_answered_by_the_assistant_with_a_talk_to_a_human_button(
    fake: FakeDiscord, apps: Any, llm: FakeOpenAI
) -> None:
    await start(apps, llm)
    assert fake.identified[0]["intents"] & (1 << 15), "the Message Content intent is requested"
    llm.script(Text("Deploys are listed with /workflow list."))
    await fake.dm(p.ALICE, "how do I deploy?")
    dm = fake.dms[p.ALICE]
    [reply] = await fake.until(lambda: answered(fake, dm), 10)
    assert "Deploys are listed with /workflow list." in everything(reply)
    [human] = custom_ids(reply)
    assert human.startswith("sb:conv:") and human.endswith(":human")
    assert llm.completions[0]["messages"][-1] == {"role": "user", "content": "how do I deploy?"}


async def test_the_same_message_create_delivered_twice_makes_one_reply(
    fake: FakeDiscord, apps: Any, llm: FakeOpenAI
) -> None:
    app = await start(apps, llm)
    llm.script(Text("Hello!"))
    message = await fake.dm(p.ALICE, "hi")
    await fake.redeliver(message)  # a gateway resume replays events
    dm = fake.dms[p.ALICE]
    await fake.until(lambda: fake.bot_messages(dm), 10)
    assert app.conversations is not None
    await fake.until(lambda: app.conversations.turns_done >= 1, 10)  # type: ignore[union-attr]
    assert len(llm.completions) == 1 and len(fake.bot_messages(dm)) == 1
    assert [m for m in llm.completions[0]["messages"] if m["role"] == "user"] == [
        {"role": "user", "content": "hi"}
    ]
    assert fake.bot_messages(p.AGENTS) == []  # bots' and our own messages are ignored, nothing handed over


async def test_handover_claim_relay_both_ways_notes_and_resolve(
    fake: FakeDiscord, apps: Any, llm: FakeOpenAI
) -> None:
    await start(apps, llm)
    llm.script(Text("Which invoice is it?"))
    await fake.dm(p.ALICE, "refund please")
    dm = fake.dms[p.ALICE]
    [reply] = await fake.until(lambda: answered(fake, dm), 10)

    # Talk to a human, clicked in the DM: queued, and a handover card appears in #agents.
    click = await fake.click(button(reply, "human"), reply, user=p.ALICE)
    await fake.answered(click)
    await fake.until(lambda: saying(fake, dm, "number 1 in the queue"), 10)
    card = await fake.until(lambda: handover_card(fake), 10)
    thread = card["id"]  # the thread started from the card has its id
    await fake.until(lambda: saying(fake, thread, "refund please"), 10)  # the story so far

    # bob claims: the card is edited in place, alice is told.
    claim = await fake.click(button(card, "claim"), card, user=p.BOB)
    assert "You have claimed" in await told(fake, claim)
    await fake.until(lambda: "claimed by @Bob" in everything(card), 10)
    assert fake.edits[card["id"]] and ":claim" not in json.dumps(custom_ids(card))
    await fake.until(lambda: saying(fake, dm, "Bob from the support team"), 10)

    # bob writes in the card's thread: relayed to alice's DM; her answer comes back into the thread.
    await fake.say(p.BOB, thread, "Hi Alice, looking at the invoice now")
    [relayed] = await fake.until(lambda: saying(fake, dm, "looking at the invoice"), 10)
    assert "Bob" in everything(relayed)
    await fake.dm(p.ALICE, "thanks, it is invoice 42")
    await fake.until(lambda: saying(fake, thread, "invoice 42"), 10)

    # A note stays in the thread; then the next message is relayed (so the note was handled first).
    await fake.say(p.BOB, thread, "// probably the payments service")
    await fake.say(p.BOB, thread, "Refund sent")
    await fake.until(lambda: saying(fake, dm, "Refund sent"), 10)
    assert not saying(fake, dm, "payments service")
    assert len(fake.calls("POST", f"/channels/{p.AGENTS}/messages/{card['id']}/threads")) == 1

    # Resolve (asks first): alice is told, the transcript is posted in the thread, the buttons go.
    yes = await confirmed(fake, button(card, "resolve"), card, p.BOB)
    assert "Resolved" in await told(fake, yes)
    await fake.until(lambda: saying(fake, dm, "marked this conversation as resolved"), 10)
    [transcript] = await fake.until(lambda: saying(fake, thread, "Transcript"), 10)
    assert "invoice 42" in everything(transcript) and "Refund sent" in everything(transcript)
    await fake.until(lambda: not any(":resolve" in c for c in custom_ids(card)), 10)


async def test_without_an_llm_a_dm_goes_straight_to_the_queue(fake: FakeDiscord, apps: Any) -> None:
    await start(apps, None)
    await fake.dm(p.ALICE, "my deploy is stuck")
    dm = fake.dms[p.ALICE]
    [told] = await fake.until(lambda: saying(fake, dm, "number 1 in the queue"), 10)
    assert "passing you to a person" in everything(told)
    card = await fake.until(lambda: handover_card(fake), 10)
    await fake.until(lambda: saying(fake, card["id"], "my deploy is stuck"), 10)


async def test_a_support_channel_message_is_answered_in_a_thread_started_from_it(
    fake: FakeDiscord, apps: Any, llm: FakeOpenAI
) -> None:
    await start(apps, llm, support_channels=["#help"])
    llm.script(Text("First answer."), Text("Second answer."))
    first = await fake.say(p.ALICE, p.HELP, "is prod down?")
    thread = first["id"]  # Discord gives a thread started from a message that message's id
    await fake.until(lambda: saying(fake, thread, "First answer."), 10)
    assert fake.bot_messages(p.HELP) == []  # nothing at the top level
    await fake.say(p.ALICE, thread, "and staging?")  # no mention needed in the conversation's thread
    await fake.until(lambda: saying(fake, thread, "Second answer."), 10)
    assert len(fake.calls("POST", f"/channels/{p.HELP}/messages/{thread}/threads")) == 1

    await fake.say(p.BOB, p.OPS, "unrelated chatter")  # not a support channel, no mention: ignored
    llm.script(Text("Try /workflow list."))
    mention = await fake.say(p.BOB, p.OPS, "what runs here?", mention_bot=True)
    await fake.until(lambda: saying(fake, mention["id"], "Try /workflow list."), 10)
    llm.script(Text("Then /workflow help."))
    await fake.say(p.BOB, mention["id"], "and then?")  # in the mention's thread: no mention needed
    await fake.until(lambda: saying(fake, mention["id"], "Then /workflow help."), 10)
    users = [m["content"] for c in llm.completions for m in c["messages"] if m["role"] == "user"]
    assert "unrelated chatter" not in users and "what runs here?" in users  # the mention is stripped


async def test_thread_reuses_a_thread_made_before_this_process_knew_it(fake: FakeDiscord, apps: Any) -> None:
    app = await start(apps, None)
    adapter = app.platforms["discord"]
    assert isinstance(adapter, DiscordAdapter)
    message = await fake.say(p.ALICE, p.OPS, "a message someone made a thread from")
    fake.threads[message["id"]] = fake.channels[message["id"]] = p.thread(
        message["id"], p.OPS, "earlier", 1440, message["timestamp"]
    )  # made elsewhere: no THREAD_CREATE reached this client

    ref = Sent(f"{p.OPS}:{message['id']}")
    assert await adapter.thread(ref) == message["id"]  # 160004, then the thread is fetched
    assert await adapter.thread(ref) == message["id"]
    assert len(fake.calls("POST", f"/channels/{p.OPS}/messages/{message['id']}/threads")) == 1
    assert fake.calls("GET", f"/channels/{message['id']}")


REJECTABLE = """
name: page
steps:
  ask:
    approval:
      title: "Page the on-call?"
      approvers: ["user:ALICE_ID"]
      notify: dm
""".replace("ALICE_ID", p.ALICE)


async def test_reject_on_a_dm_approval_card_asks_first(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    """With notify: dm there is no channel card, only the approver's own: its Reject still asks."""
    workflow(REJECTABLE, workflows_dir)
    app = await apps[0]()
    await fake.followup(await fake.slash("run", user=p.BOB, name="page"))
    [card] = await fake.until(lambda: fake.dm_messages(p.ALICE), 10)
    reject = button(card, "reject")
    yes = await confirmed(fake, reject, card, p.ALICE)
    assert "Rejected" in await told(fake, yes)
    [run] = await app.runtime.store.list_runs()
    assert (await finished(app.runtime, run.id)).status == "failed"


def test_the_command_tree_has_the_conversation_commands() -> None:
    tree = SwitchboardBot().tree
    names = sorted(c.name for c in tree.get_commands())
    assert names == ["agent", "approvals", "conversation", "human", "queue", "runners", "workflow"]
    [transcript] = tree.get_command("conversation").commands  # type: ignore[union-attr]
    assert transcript.name == "transcript"
    agent = tree.get_command("agent")
    assert [c.value for c in agent.parameters[0].choices] == ["on", "off", "status"]  # type: ignore[union-attr]
