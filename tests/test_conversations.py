"""Conversations end to end below the chat platforms: the real openai client against a fake server, a real
database (SQLite and PostgreSQL), and what would be sent read back from the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.storage.conversations.states import State
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import Error, FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually

ALICE = person("alice")
DAVE = person("dave", groups=("agents",))
ERIN = person("erin", groups=("agents",))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env_for(make_runtime: Callable[..., Any], fake: FakeOpenAI) -> AsyncIterator[Callable[..., Any]]:
    made: list[Env] = []

    async def make(llm: bool = True, **overrides: Any) -> Env:
        values: dict[str, Any] = {"debounce": 0.05, "llm_retries": 1, "llm_timeout": 5.0}
        if llm:
            values.update(openai_api_key="k", openai_base_url=fake.base_url)
        values.update(overrides)
        env = await make_env(await make_runtime(**values))
        made.append(env)
        return env

    yield make
    for env in made:
        await env.service.stop()


async def state_of(env: Env, conv_id: str, state: State) -> bool:
    return (await env.get(conv_id)).state == state


async def test_no_llm_goes_straight_to_the_queue(env_for: Callable[..., Any]) -> None:
    env = await env_for(llm=False)
    conv = await env.service.user_said(said(ALICE, "my deploy is stuck"))
    assert conv is not None
    queued = await env.get(conv.id)
    assert queued.state == State.PENDING_HUMAN and queued.reason == "no_llm"
    told = await env.texts("@alice")
    assert "number 1 in the queue" in told[-1]
    card = await env.card(queued)
    assert card is not None and card.title == "Handover: alice"
    assert [b.label for b in card.buttons] == ["Claim", "Transfer"]
    assert [k for k, _ in await env.events(conv.id)] == ["created", "transition", "transition"]


async def test_the_assistant_answers_in_the_conversation(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(Text("Deploys are listed with /workflow list."))
    conv = await env.service.user_said(said(ALICE, "how do I deploy?"))
    assert conv is not None
    await eventually(lambda: env.texts("@alice"))
    posts = await env.posts("@alice")
    assert posts[0].text == "Deploys are listed with /workflow list."
    assert [b.label for b in posts[0].buttons] == ["Talk to a human"]
    assert (await env.get(conv.id)).state == State.AI_PROCESSING
    request = fake.completions[0]
    assert request["messages"][-1] == {"role": "user", "content": "how do I deploy?"}
    assert {t["function"]["name"] for t in request["tools"]} >= {
        "handover_to_human",
        "finish",
        "run_workflow",
    }


async def test_the_handover_tool_queues_with_the_models_summary(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(
        ToolCalls.one(
            "handover_to_human",
            {
                "reason": "cannot_help",
                "summary": "Wants a refund for the March invoice.",
                "skills": ["billing"],
                "priority": "high",
                "suggested_reply": "Hi, I can help with the refund.",
            },
        )
    )
    conv = await env.service.user_said(said(ALICE, "refund please"))
    assert conv is not None
    queued = await eventually(lambda: _in(env, conv.id, State.PENDING_HUMAN))
    assert queued.summary == "Wants a refund for the March invoice."
    assert queued.skills == ("billing",) and queued.priority_name == "high"
    card = await env.card(queued)
    assert card is not None and "refund" in card.text
    assert any(f.label == "Suggested first reply" for f in card.fields)


async def test_a_keyword_in_the_text_is_not_a_handover_only_the_tool_is(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(Text("I will hand you over to a human agent now."))  # prose, no tool call
    conv = await env.service.user_said(said(ALICE, "hello"))
    assert conv is not None
    await eventually(lambda: env.texts("@alice"))
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


async def test_twenty_concurrent_claims_make_one_owner(env_for: Callable[..., Any]) -> None:
    env = await env_for(llm=False)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    agents = [person(f"agent{i}") for i in range(20)]
    answers = await asyncio.gather(*(env.service.desk.claim(conv.id, a) for a in agents))
    winners = [a for a in answers if a.startswith("You have claimed")]
    assert len(winners) == 1
    owner = (await env.get(conv.id)).agent_name
    assert all(a == f"Already claimed by @{owner}." for a in answers if a not in winners)
    card = await env.card(await env.get(conv.id))
    assert card is not None and card.status == f"claimed by @{owner}"
    assert [b.label for b in card.buttons] == ["Resolve", "Back to AI", "Release", "Transfer"]


async def test_a_repeated_claim_by_its_owner_is_told_so_and_audited(env_for: Callable[..., Any]) -> None:
    env = await env_for(llm=False)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    assert (await env.service.desk.claim(conv.id, DAVE)).startswith("You have claimed")
    again = await env.service.desk.claim(conv.id, DAVE)
    assert again == "You already have this conversation with alice; reply in its thread."
    refused = await env.service.desk.claim(conv.id, ERIN)
    assert refused == "Already claimed by @dave."
    kinds = [kind for kind, _ in await env.events(conv.id)]
    assert "claim_repeated" in kinds and "claim_refused" in kinds
    assert (await env.get(conv.id)).agent_ref == DAVE.ref


async def test_a_claim_while_the_model_thinks_drops_its_reply(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(Text("I am the assistant and I am late.", delay=1.0))
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await eventually(lambda: _requests(fake))
    told = await env.service.ask_for_human(conv.id, ALICE.ref)  # the button, mid-generation
    assert told == ""
    assert (await env.service.desk.claim(conv.id, DAVE)).startswith("You have claimed")
    await eventually(lambda: _has_event(env, conv.id, "reply_dropped"), timeout=5)
    assert not any("late" in t for t in await env.texts("@alice"))


async def test_three_quick_messages_make_one_turn(env_for: Callable[..., Any], fake: FakeOpenAI) -> None:
    env = await env_for(debounce=0.3)
    for text in ("hi", "my deploy", "is stuck"):
        await env.service.user_said(said(ALICE, text))
    await eventually(lambda: env.texts("@alice"))
    # A later message as the marker: once its reply is out, a second turn for the three would be too.
    await env.service.user_said(said(ALICE, "marker"))
    await eventually(lambda: _text_in(env, "marker"), message="the reply to the marker message")
    assert len(fake.completions) == 2
    users = [m["content"] for m in fake.completions[0]["messages"] if m["role"] == "user"]
    assert users == ["hi", "my deploy", "is stuck"]
    assert [m["content"] for m in fake.completions[1]["messages"] if m["role"] == "user"][-1] == "marker"


async def test_a_repeated_delivery_is_one_message_and_one_reply(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    first = await env.service.user_said(said(ALICE, "hi", key="slack:Ev1"))
    again = await env.service.user_said(said(ALICE, "hi", key="slack:Ev1"))
    assert first is not None and again is None
    await eventually(lambda: env.texts("@alice"))
    # A later message as the marker: once its reply is out, a reply to the repeat would be too.
    await env.service.user_said(said(ALICE, "marker", key="slack:Ev2"))
    await eventually(lambda: _text_in(env, "marker"), message="the reply to the marker message")
    assert len(fake.completions) == 2 and len(await env.texts("@alice")) == 2


async def test_the_same_answer_twice_is_sent_marked_as_a_repeat(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(Text("Restart the runner."), Text("Restart the runner."))
    await env.service.user_said(said(ALICE, "the runner is stuck", key="k1"))
    await eventually(lambda: env.texts("@alice"))
    await env.service.user_said(said(ALICE, "still stuck", key="k2"))
    await eventually(lambda: _replies(env, 2), message="an answer to the second message")
    first, second = await env.texts("@alice")
    assert first == "Restart the runner."
    assert second.startswith("Restart the runner.") and "same answer as before" in second


async def _replies(env: Env, count: int) -> bool:
    return len(await env.texts("@alice")) >= count


async def test_rate_limits_are_retried_then_answered(env_for: Callable[..., Any], fake: FakeOpenAI) -> None:
    env = await env_for()
    fake.script(Error(429, retry_after=0.01), Text("hello after a 429"))
    await env.service.user_said(said(ALICE, "hi"))
    await eventually(lambda: env.texts("@alice"))
    assert (await env.texts("@alice")) == ["hello after a 429"]


async def test_an_llm_down_for_good_hands_over(env_for: Callable[..., Any], fake: FakeOpenAI) -> None:
    env = await env_for()
    fake.default = lambda body: Error(500)
    conv = await env.service.user_said(said(ALICE, "hi"))
    assert conv is not None
    queued = await eventually(lambda: _in(env, conv.id, State.PENDING_HUMAN))
    assert queued.reason == "llm_unavailable"
    assert "not available" in (await env.texts("@alice"))[-1]
    assert len(fake.completions) == 2  # the first try and one retry (llm_retries=1)


async def test_a_slow_llm_times_out_and_hands_over(env_for: Callable[..., Any], fake: FakeOpenAI) -> None:
    env = await env_for(llm_timeout=0.3, llm_retries=0)
    fake.script(Text("too late", delay=2.0))
    conv = await env.service.user_said(said(ALICE, "hi"))
    assert conv is not None
    queued = await eventually(lambda: _in(env, conv.id, State.PENDING_HUMAN))
    assert queued.reason == "llm_unavailable"


async def test_relay_both_ways_notes_stay_internal_and_resolve_stores_the_transcript(
    env_for: Callable[..., Any],
) -> None:
    env = await env_for(llm=False)
    conv = await env.service.user_said(said(ALICE, "help me"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    held = await env.get(conv.id)
    await env.service.desk.agent_said(held, DAVE, "Hi Alice, looking now", "e1")
    await env.service.desk.agent_said(held, DAVE, "// probably the payments service", "e2")
    await env.service.desk.agent_said(held, ERIN, "I can help too", "e3")  # not the holder
    await env.service.user_said(said(ALICE, "thanks!"))
    to_user = await env.texts("@alice")
    assert "Hi Alice, looking now" in " ".join(to_user)
    assert not any("payments" in t or "help too" in t for t in to_user)
    thread = await env.texts(parent=held.card_key)
    assert any("thanks!" in t for t in thread)
    assert any("Not sent to alice" in t for t in thread)
    assert (await env.get(conv.id)).first_human_at is not None
    await env.service.desk.resolve(conv.id, DAVE)
    done = await env.get(conv.id)
    assert done.state == State.RESOLVED
    thread = await env.texts(parent=held.card_key)
    assert thread[-1].startswith("Transcript") and "Hi Alice, looking now" in thread[-1]
    card = await env.card(done)
    assert card is not None and card.buttons == () and card.status == "resolved"


async def test_back_to_ai_gives_the_assistant_the_note(env_for: Callable[..., Any], fake: FakeOpenAI) -> None:
    env = await env_for()
    fake.script(ToolCalls.one("handover_to_human", {"reason": "user_request", "summary": "wants a person"}))
    conv = await env.service.user_said(said(ALICE, "a person please"))
    assert conv is not None
    await eventually(lambda: _in(env, conv.id, State.PENDING_HUMAN))
    await env.service.desk.claim(conv.id, DAVE)
    await env.service.desk.back_to_ai(conv.id, DAVE, "She only needs the staging deploy command.")
    fake.script(Text("Run /workflow run deploy env=staging."))
    await env.service.user_said(said(ALICE, "so how?"))
    await eventually(lambda: _text_in(env, "env=staging"))
    system = fake.completions[-1]["messages"][0]["content"]
    assert "She only needs the staging deploy command." in system
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


async def test_finish_ends_the_conversation_and_the_next_message_starts_another(
    env_for: Callable[..., Any], fake: FakeOpenAI
) -> None:
    env = await env_for()
    fake.script(ToolCalls.one("finish", {"resolution": "Explained how to deploy."}))
    conv = await env.service.user_said(said(ALICE, "thanks, that's all"))
    assert conv is not None
    done = await eventually(lambda: _in(env, conv.id, State.FINISHED))
    assert done.resolution == "Explained how to deploy."
    fake.script(Text("Hello again"))
    second = await env.service.user_said(said(ALICE, "one more thing"))
    assert second is not None and second.id != conv.id


async def _in(env: Env, conv_id: str, state: State) -> Any:
    conv = await env.get(conv_id)
    return conv if conv.state == state else None


async def _has_event(env: Env, conv_id: str, kind: str) -> bool:
    return any(k == kind for k, _ in await env.events(conv_id))


async def _text_in(env: Env, needle: str) -> bool:
    return any(needle in t for t in await env.texts())


async def _requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return fake.completions
