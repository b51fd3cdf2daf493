"""Conversations on Slack end to end: the real Bolt app on the real server with signed requests, the real
slack_sdk client against the fake Slack Web API, and the real openai client against the fake OpenAI server,
on SQLite and PostgreSQL.

alice writes to the bot in her DM (D0ALICE); dave and erin are agents in the agents' channel (C0AGENTS).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.conversations.service import Conversations
from bot.delivery.live import WRITING
from bot.process import App, start_app, stop_app
from bot.storage.conversations.states import State
from bot.storage.conversations.tables import conversation_messages, conversations
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.fakes.slack_api import Call, FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually
from tests.test_slack import button, settings_with

FORM = "application/x-www-form-urlencoded"
AGENTS, DM, HELP = "C0AGENTS", "D0ALICE", "C0HELP"
HANDOVER = ToolCalls.one(
    "handover_to_human",
    {"reason": "cannot_help", "summary": "Wants a refund for the March invoice.", "skills": ["billing"]},
)


@dataclass
class Harness:
    fake: FakeSlack
    llm: FakeOpenAI
    app: App
    send: SlackSender
    _ts: Any

    @property
    def service(self) -> Conversations:
        assert self.app.conversations is not None
        return self.app.conversations

    def ts(self) -> str:
        """A fresh ``ts`` for a message a person writes (the fake's own are current times)."""
        return f"1600000000.{next(self._ts):06d}"

    async def dm(self, text: str, event_id: str | None = None, retry_num: int | None = None) -> str:
        """alice writes ``text`` in her DM with the bot; returns the event_id."""
        event_id = event_id or f"Ev{self.ts().replace('.', '')}"
        event = {"type": "message", "channel_type": "im", "user": "U0ALICE", "text": text}
        return await self._event({**event, "ts": self.ts(), "channel": DM}, event_id, retry_num)

    async def in_thread(self, user: str, channel: str, thread_ts: str, text: str) -> None:
        """A plain message in a channel thread (a ``message`` event with channel_type "channel")."""
        event = {"type": "message", "channel_type": "channel", "user": user, "text": text}
        event.update(ts=self.ts(), channel=channel, thread_ts=thread_ts)
        await self._event(event, f"Ev{event['ts'].replace('.', '')}")

    async def _event(self, event: dict[str, Any], event_id: str, retry_num: int | None = None) -> str:
        answer = await self.send.event(event, event_id, retry_num)
        assert answer.status == 200
        return event_id

    async def command(self, command: str, text: str, user: str, channel: str = AGENTS) -> None:
        body = self.send.command_body(text, user, channel, command=command)
        assert (await self.send.send(body, FORM)).status == 200

    async def click(self, ts: str, choice: str, user: str) -> None:
        action = button(self.fake.message(AGENTS, ts), choice)
        assert action is not None, f"no {choice} button on the card"
        assert (await self.send.click(action, AGENTS, ts, user=user)).status == 200

    async def user_messages(self) -> list[str]:
        query = sa.select(conversation_messages.c.text).where(conversation_messages.c.role == "user")
        async with self.app.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def only_conversation(self) -> str:
        async with self.app.engine.connect() as conn:
            [conv_id] = (await conn.execute(sa.select(conversations.c.id))).scalars().all()
        return str(conv_id)


@pytest.fixture
async def harness(
    db_url: str, tmp_path: Path, workflows_dir: Path
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    async with FakeSlack() as fake, FakeOpenAI() as llm:
        for user, name in (("U0ALICE", "alice"), ("U0DAVE", "dave"), ("U0ERIN", "erin")):
            fake.add_user(user, name)
        fake.channels.update({AGENTS: "agents", HELP: "help"})
        made: list[Harness] = []

        async def make(with_llm: bool = True, **overrides: Any) -> Harness:
            values: dict[str, Any] = {
                "database_url": db_url,
                "agents_channel": [AGENTS],
                "debounce": 0.3,
                "llm_retries": 0,
                "llm_timeout": 5.0,
                "card_update_interval": 0.0,
            }
            if with_llm:
                values.update(openai_api_key=SecretStr("k"), openai_base_url=llm.base_url)
            app = await start_app(settings_with(fake, tmp_path, workflows_dir, **{**values, **overrides}))
            made.append(
                Harness(fake, llm, app, SlackSender(fake, f"{app.url}/slack/events"), itertools.count(1))
            )
            return made[-1]

        try:
            yield make
        finally:
            for h in made:
                await h.send.close()
                await stop_app(h.app, grace=0.5, flush=0.5)


def posts(fake: FakeSlack, channel: str, thread: str | None = None) -> list[dict[str, Any]]:
    """The params of every message delivered to ``channel`` (under ``thread`` when given, else top level),
    with its text and blocks as they are now: a live answer counts once it is edited into the reply."""
    found = []
    sent = [c for c in fake.calls if c.method in ("chat.postMessage", "chat.startStream")]
    for c in sent:
        if not c.answer.get("ok") or c.params["channel"] != channel or c.params.get("thread_ts") != thread:
            continue
        now = fake.message(channel, c.answer["ts"])
        if now.get("streaming") or str(now["text"]).endswith(WRITING) or not now["blocks"]:
            continue  # a live answer, still being written
        found.append({**c.params, "text": now["text"], "blocks": now["blocks"]})
    return found


def texts(fake: FakeSlack, channel: str, thread: str | None = None) -> list[str]:
    return [str(p.get("text", "")) for p in posts(fake, channel, thread)]


def card_ts(fake: FakeSlack) -> str | None:
    """The ts of the handover card in the agents' channel."""
    for c in fake.delivered("chat.postMessage"):
        key = str(c.params.get("metadata", {}).get("event_payload", {}).get("key", ""))
        if c.params["channel"] == AGENTS and key.startswith("sb-card-conversation:"):
            return str(c.answer["ts"])
    return None


def card_text(fake: FakeSlack, ts: str) -> str:
    message = fake.message(AGENTS, ts)
    return str(message["text"]) + json.dumps(message["blocks"], ensure_ascii=False)


def told(fake: FakeSlack, user: str, needle: str) -> list[str]:
    return [str(e["text"]) for e in fake.ephemerals if e["user"] == user and needle in str(e["text"])]


def updates_of(fake: FakeSlack, ts: str) -> list[Call]:
    return [c for c in fake.delivered("chat.update") if c.params["ts"] == ts]


async def handed_over(h: Harness) -> str:
    """alice asks for a refund, the model hands over, and the card appears; its ts."""
    h.llm.script(HANDOVER)
    await h.dm("refund please")
    return await eventually(lambda: card_ts(h.fake))


async def claimed_by_dave(h: Harness) -> str:
    ts = await handed_over(h)
    await h.click(ts, "claim", "U0DAVE")
    await eventually(lambda: "claimed by @dave" in card_text(h.fake, ts))  # the fallback text
    assert "claimed by <@U0DAVE>" in json.dumps(h.fake.message(AGENTS, ts)["blocks"])  # a Slack mention
    return ts


async def test_a_dm_gets_the_assistants_reply_with_a_talk_to_a_human_button(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.llm.script(Text("Deploys are listed with /workflow list."))
    await h.dm("how do I deploy?")
    [reply] = await eventually(lambda: posts(h.fake, DM))
    assert reply["text"] == "Deploys are listed with /workflow list."
    [human] = [e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert human["text"]["text"] == "Talk to a human" and human["action_id"].endswith(":human")
    assert h.llm.completions[0]["messages"][-1] == {"role": "user", "content": "how do I deploy?"}


async def test_the_same_event_delivered_twice_makes_one_message_and_one_reply(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    event = {"type": "message", "channel_type": "im", "user": "U0ALICE", "text": "hi", "ts": h.ts()}
    await h._event({**event, "channel": DM}, "Ev0001")
    await h._event({**event, "channel": DM}, "Ev0001", retry_num=1)  # Slack retried a slow ack
    await eventually(lambda: posts(h.fake, DM))
    # Both deliveries were taken within the debounce window, so a second copy would be in this turn.
    assert await h.user_messages() == ["hi"]
    assert len(h.llm.completions) == 1
    assert [m for m in h.llm.completions[0]["messages"] if m["role"] == "user"] == [
        {"role": "user", "content": "hi"}
    ]
    assert len(posts(h.fake, DM)) == 1
    assert not await h.app.dedupe.first("slack:Ev0001", h.app.runtime.clock())  # marked on receipt


async def test_a_handover_card_is_claimed_by_exactly_one_of_two_agents(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    ts = await handed_over(h)
    assert "Wants a refund for the March invoice." in card_text(h.fake, ts)
    # The DM and the agents' channel are delivered side by side: either may arrive first.
    await eventually(lambda: [t for t in texts(h.fake, DM) if "number 1 in the queue" in t])
    await eventually(
        lambda: [t for t in texts(h.fake, AGENTS, ts) if "refund please" in t]
    )  # the story so far

    action = button(h.fake.message(AGENTS, ts), "claim")
    assert action is not None
    answers = await asyncio.gather(
        h.send.click(action, AGENTS, ts, user="U0DAVE"), h.send.click(action, AGENTS, ts, user="U0ERIN")
    )
    assert [a.status for a in answers] == [200, 200]
    won = await eventually(
        lambda: told(h.fake, "U0DAVE", "You have claimed") or told(h.fake, "U0ERIN", "You have claimed")
    )
    winner, loser = ("dave", "U0ERIN") if told(h.fake, "U0DAVE", "You have claimed") else ("erin", "U0DAVE")
    assert won
    [refused] = await eventually(lambda: told(h.fake, loser, "Already claimed"))
    assert refused == f"Already claimed by @{winner}."
    await eventually(lambda: f"claimed by @{winner}" in card_text(h.fake, ts))
    assert updates_of(h.fake, ts)  # the card was edited in place, not posted again
    assert button(h.fake.message(AGENTS, ts), "claim") is None
    assert button(h.fake.message(AGENTS, ts), "resolve") is not None
    await eventually(lambda: [t for t in texts(h.fake, DM) if f"{winner} from the support team" in t])


async def test_agent_and_user_talk_through_the_cards_thread_and_notes_stay_there(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    ts = await claimed_by_dave(h)
    await h.in_thread("U0DAVE", AGENTS, ts, "Hi Alice, looking at the invoice now")
    [relayed] = await eventually(
        lambda: [p for p in posts(h.fake, DM) if "looking at the invoice" in p["text"]]
    )
    assert "dave" in json.dumps(relayed["blocks"])  # under the agent's name

    await h.dm("thanks, it is invoice 42")
    await eventually(lambda: [t for t in texts(h.fake, AGENTS, ts) if "invoice 42" in t])

    conv_id = await h.only_conversation()
    await h.in_thread("U0DAVE", AGENTS, ts, "// probably the payments service")
    await eventually(lambda: _has_note(h, conv_id, "payments service"))
    await h.in_thread("U0ERIN", AGENTS, ts, "I can help too")  # not the one who claimed it
    await eventually(lambda: [t for t in texts(h.fake, AGENTS, ts) if "Not sent to alice" in t])
    await h.in_thread("U0DAVE", AGENTS, ts, "Refund sent")
    await eventually(lambda: [t for t in texts(h.fake, DM) if "Refund sent" in t])
    assert not [t for t in texts(h.fake, DM) if "payments" in t or "help too" in t]
    assert (await h.service.store.get(conv_id)).first_human_at is not None  # type: ignore[union-attr]


async def test_resolve_tells_the_user_and_posts_the_transcript_in_the_thread(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    ts = await claimed_by_dave(h)
    await h.in_thread("U0DAVE", AGENTS, ts, "Refund sent")
    await eventually(lambda: [t for t in texts(h.fake, DM) if "Refund sent" in t])
    await h.click(ts, "resolve", "U0DAVE")
    await eventually(
        lambda: [t for t in texts(h.fake, DM) if "dave has marked this conversation as resolved" in t]
    )
    [transcript] = await eventually(
        lambda: [t for t in texts(h.fake, AGENTS, ts) if t.startswith("Transcript")]
    )
    assert "refund please" in transcript and "Refund sent" in transcript
    await eventually(
        lambda: "resolved" in card_text(h.fake, ts) and button(h.fake.message(AGENTS, ts), "resolve") is None
    )
    conv = await h.service.store.get(await h.only_conversation())
    assert conv is not None and conv.state == State.RESOLVED


async def test_without_an_llm_a_dm_goes_straight_to_the_queue_and_the_agent_commands_answer(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness(with_llm=False)
    await h.dm("my deploy is stuck")
    ts = await eventually(lambda: card_ts(h.fake))
    [queued] = await eventually(lambda: texts(h.fake, DM))
    assert "number 1 in the queue" in queued
    assert "Claim" in card_text(h.fake, ts) and not h.llm.completions

    await h.command("/agent", "on billing", "U0DAVE")
    [duty] = await eventually(lambda: told(h.fake, "U0DAVE", "You are on duty"))
    assert duty == "You are on duty. Skills: billing. Holding 0 of 3."
    await h.command("/queue", "", "U0DAVE")
    [shown] = await eventually(
        lambda: [e for e in h.fake.ephemerals if e["user"] == "U0DAVE" and e.get("blocks")]
    )
    board = str(shown["text"]) + json.dumps(shown["blocks"])
    assert "alice" in board and "no_llm" in board and "dave" in board


async def test_a_mention_and_its_message_event_are_one_message_answered_in_a_thread(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness(support_channels=[HELP])
    h.llm.script(Text("Try /workflow list."))
    ts = h.ts()
    said = {"user": "U0ALICE", "text": "<@U0BOT> what can I run?", "ts": ts, "channel": HELP}
    await h._event({"type": "app_mention", **said}, "Ev1000")
    await h._event({"type": "message", "channel_type": "channel", **said}, "Ev1001")  # the same message
    [reply] = await eventually(lambda: posts(h.fake, HELP, ts))
    assert reply["text"] == "Try /workflow list."
    assert await h.user_messages() == ["what can I run?"]  # the mention is stripped, and stored once

    await h.in_thread("U0ALICE", HELP, ts, "and how do I deploy?")  # a support channel: no mention needed
    await eventually(lambda: len(posts(h.fake, HELP, ts)) == 2)
    assert len(h.llm.completions) == 2 and not posts(h.fake, HELP)


async def test_a_plain_message_elsewhere_is_not_for_the_bot(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.fake.channels["C0RANDOM"] = "random"
    await h._event(
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U0ALICE",
            "text": "lunch?",
            "ts": h.ts(),
            "channel": "C0RANDOM",
        },
        "Ev2000",
    )
    h.llm.script(Text("Hello!"))
    await h.dm("hi")  # handled after the channel message was looked at and let go
    await eventually(lambda: posts(h.fake, DM))
    assert await h.user_messages() == ["hi"]


async def _has_note(h: Harness, conv_id: str, needle: str) -> bool:
    return any(m.role == "note" and needle in m.text for m in await h.service.store.messages(conv_id))


async def test_a_plain_reply_in_a_mentions_thread_needs_no_second_mention(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.fake.channels["C0RANDOM"] = "random"
    h.llm.script(Text("Which service?"), Text("Deploying payments is /workflow run deploy."))
    ts = h.ts()
    said = {"user": "U0ALICE", "text": "<@U0BOT> how do I deploy?", "ts": ts, "channel": "C0RANDOM"}
    await h._event({"type": "app_mention", **said}, "Ev3000")
    await eventually(lambda: posts(h.fake, "C0RANDOM", ts))
    await h.in_thread("U0ALICE", "C0RANDOM", ts, "payments")
    await eventually(lambda: len(posts(h.fake, "C0RANDOM", ts)) == 2)
    assert await h.user_messages() == ["how do I deploy?", "payments"]
