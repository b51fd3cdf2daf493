"""The assistant's answer streamed on Slack: the real Bolt app and slack_sdk client against the fake Slack
Web API (with Slack's AI-app methods), the real openai client against the fake server streaming a word
every 0.1 s. What is checked is the sequence of Web API calls the fake recorded."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakes.openai_server import Text
from tests.fakes.slack_api import FakeSlack
from tests.helpers import eventually
from tests.test_slack_conversations import DM, Harness, harness, posts

__all__ = ["harness"]  # the fixture, used by name below
WORDS = " ".join(f"word{n}" for n in range(30))  # 30 chunks, about 3 s of writing
LIVE = ("assistant.threads.setStatus", "chat.startStream", "chat.appendStream", "chat.stopStream")


def sequence(fake: FakeSlack) -> list[str]:
    """The AI-app and message calls the bot made, in order, consecutive appends and updates counted once."""
    names: list[str] = []
    for c in fake.calls:
        if c.method in (*LIVE, "chat.postMessage", "chat.update") and c.method not in names[-1:]:
            names.append(c.method)
    return names


async def in_assistant_thread(h: Harness, text: str) -> str:
    """alice starts an assistant thread in her DM (her message is its parent); the thread's ts."""
    ts = h.ts()
    event = {"type": "message", "channel_type": "im", "user": "U0ALICE", "text": text}
    await h._event({**event, "ts": ts, "thread_ts": ts, "channel": DM}, f"Ev{ts.replace('.', '')}")
    return ts


def buttons(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


async def test_an_assistant_thread_shows_thinking_then_streams_the_answer(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.llm.chunk_delay = 0.1
    h.llm.script(Text(WORDS))
    thread = await in_assistant_thread(h, "tell me everything")
    [reply] = await eventually(lambda: posts(h.fake, DM, thread), timeout=15)
    fake = h.fake
    assert sequence(fake) == [*LIVE, "chat.update"]
    [status] = fake.statuses
    assert (status["channel_id"], status["thread_ts"], status["status"]) == (DM, thread, "is thinking…")
    [start] = fake.delivered("chat.startStream")
    assert start.params["thread_ts"] == thread and start.params["recipient_user_id"] == "U0ALICE"
    assert WORDS.startswith(start.params["markdown_text"]) and start.params["markdown_text"] != WORDS
    ts = start.answer["ts"]
    # The pieces add up to the answer, and they were coalesced: a few appends for 30 pieces.
    appends = fake.delivered("chat.appendStream")
    [stop] = fake.delivered("chat.stopStream")
    pieces = [c.params.get("markdown_text", "") for c in [start, *appends, stop]]
    assert "".join(pieces) == WORDS and 1 <= len(appends) <= 6
    # The stored reply replaced the streamed message: its text, and its Talk to a human button.
    [final] = [c for c in fake.delivered("chat.update") if c.params["ts"] == ts]
    assert json.dumps(final.params["blocks"]).count("word29") == 1
    message = fake.message(DM, ts)
    assert message["text"] == WORDS and [b for b in buttons(message) if b.endswith(":human")]
    assert reply["text"] == WORDS
    assert not [c for c in fake.delivered("chat.postMessage") if c.params["channel"] == DM]  # one message


async def test_where_slack_will_not_stream_the_answer_is_posted_then_edited(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.fake.streaming = False
    h.llm.chunk_delay = 0.1
    h.llm.script(Text(WORDS))
    thread = await in_assistant_thread(h, "tell me everything")
    [reply] = await eventually(lambda: posts(h.fake, DM, thread), timeout=15)
    fake = h.fake
    assert [c.answer.get("error") for c in fake.calls_to("chat.startStream")] == ["feature_not_enabled"]
    assert sequence(fake) == [
        "assistant.threads.setStatus",
        "chat.startStream",
        "chat.postMessage",
        "chat.update",
    ]
    [post] = [c for c in fake.delivered("chat.postMessage") if c.params["channel"] == DM]
    ts = post.answer["ts"]
    assert WORDS.startswith(post.params["text"].removesuffix(" …")) and post.params["text"] != WORDS
    edits = [c for c in fake.delivered("chat.update") if c.params["ts"] == ts]
    assert 1 <= len(edits) <= 3  # a partial text every 3 s at most (chat.update is Tier 3), then the reply
    assert reply["text"] == WORDS and buttons(fake.message(DM, ts))


async def test_a_plain_dm_has_no_thread_so_no_status_and_no_stream(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    h.llm.script(Text("Deploys are listed with /workflow list."))
    await h.dm("how do I deploy?")
    [reply] = await eventually(lambda: posts(h.fake, DM))
    assert reply["text"] == "Deploys are listed with /workflow list."
    assert not h.fake.calls_to("assistant.threads.setStatus") and not h.fake.calls_to("chat.startStream")
    assert sequence(h.fake) == ["chat.postMessage", "chat.update"]
