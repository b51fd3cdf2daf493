"""Conversation deadlines on a fake clock: re-ping, escalate, a silent agent, a silent user, and a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.storage.conversations.states import State
from handlers.services import Services
from handlers.types import Click
from tests.conftest import FakeClock
from tests.conversation_env import Env, make_env, person, said

ALICE = person("alice")
DAVE = person("dave")


@pytest.fixture
async def env_for(make_runtime: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    made: list[Env] = []

    async def make(clock: FakeClock, **overrides: Any) -> Env:
        values: dict[str, Any] = {"agents_fallback_channel": ["console:ops"], "debounce": 0.0}
        values.update(overrides)
        env = await make_env(await make_runtime(clock=clock, **values))
        made.append(env)
        return env

    yield make
    for env in made:
        await env.service.stop()


async def test_an_unclaimed_conversation_is_repinged_then_escalated(env_for: Callable[..., Any]) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    await env.service.store.set_agent(DAVE, clock(), available=True)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    thread = conv.card_key
    clock.advance(119)
    await env.runtime.fire_due()
    assert not any("still waiting" in t for t in await env.texts(parent=thread))
    clock.advance(2)
    await env.runtime.fire_due()
    assert any(t.startswith("@dave alice is still waiting") for t in await env.texts(parent=thread))
    clock.advance(180)
    await env.runtime.fire_due()
    assert any("Nobody has claimed" in t for t in await env.texts("ops"))
    escalated = await env.get(conv.id)
    assert escalated.escalated and escalated.pings == 2
    card = await env.card(escalated)
    assert card is not None and "escalated" in " ".join(card.context)


async def test_a_timer_after_the_claim_does_nothing(env_for: Callable[..., Any]) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    clock.advance(400)
    await env.runtime.fire_due()
    held = await env.get(conv.id)
    assert held.pings == 0 and not held.escalated and held.state == State.HUMAN_ACTIVE


async def test_a_silent_agent_is_reminded_then_the_conversation_is_offered_to_others(
    env_for: Callable[..., Any],
) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    clock.advance(10)
    await env.service.user_said(said(ALICE, "hello? anyone?"))
    clock.advance(301)
    await env.runtime.fire_due()
    assert any("@dave alice is waiting for your reply" in t for t in await env.texts(parent=conv.card_key))
    clock.advance(300)
    await env.runtime.fire_due()
    back = await env.get(conv.id)
    assert back.state == State.PENDING_HUMAN and back.agent_ref is None
    assert any("step away" in t for t in await env.texts("@alice"))


async def test_a_silent_user_is_warned_then_the_conversation_resolves(env_for: Callable[..., Any]) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    await env.service.desk.agent_said(await env.get(conv.id), DAVE, "Which service?", "e1")
    clock.advance(1801)
    await env.runtime.fire_due()
    assert any("Are you still there?" in t for t in await env.texts("@alice"))
    clock.advance(1800)
    await env.runtime.fire_due()
    done = await env.get(conv.id)
    assert done.state == State.RESOLVED and done.resolution == "closed after 60 min without a reply"


async def test_a_deadline_that_passed_while_down_fires_at_start(
    make_runtime: Callable[..., Any], env_for: Callable[..., Any]
) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.stop()
    await env.runtime.stop(grace=0.1)
    clock.advance(600)
    later = await env_for(clock)
    await later.runtime.fire_due()
    assert (await later.get(conv.id)).escalated


async def test_after_a_restart_in_human_active_the_relay_and_buttons_still_work(
    env_for: Callable[..., Any],
) -> None:
    from handlers.router import Router

    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    await env.service.stop()
    await env.runtime.stop(grace=0.1)
    later = await env_for(clock)
    held = await later.get(conv.id)
    await later.service.user_said(said(ALICE, "still there?"))
    assert any("still there?" in t for t in await later.texts(parent=held.card_key))
    await later.service.desk.agent_said(held, DAVE, "yes, here", "e9")
    assert any("yes, here" in t for t in await later.texts("@alice"))
    router = Router(Services(later.runtime, later.runtime.settings, later.service))
    from bot.identity import Place

    where = Place("console", "agents")
    refused = await router.click(Click(person("erin"), where, f"sb:conv:{conv.id}:claim"))
    assert refused is not None and refused.plain_text() == "Already claimed by @dave."  # type: ignore[union-attr]
    done = await router.click(Click(DAVE, where, f"sb:conv:{conv.id}:resolve"))
    assert done is not None and "Resolved" in done.plain_text()  # type: ignore[union-attr]
    assert (await later.get(conv.id)).state == State.RESOLVED


async def test_a_user_message_brings_the_agents_deadline_forward(env_for: Callable[..., Any]) -> None:
    clock = FakeClock()
    env = await env_for(clock)
    conv = await env.service.user_said(said(ALICE, "help"))
    assert conv is not None
    await env.service.desk.claim(conv.id, DAVE)
    clock.advance(200)
    await env.runtime.fire_due()  # the queue's timer rings once more and finds nothing to do
    await env.service.desk.agent_said(await env.get(conv.id), DAVE, "Which service?", "e1")
    clock.advance(60)
    await env.service.user_said(said(ALICE, "payments"))  # now dave owes an answer: remind in 5 min
    clock.advance(301)
    await env.runtime.fire_due()
    assert any("@dave alice is waiting for your reply" in t for t in await env.texts(parent=conv.card_key))
    pending = await env.runtime.store.timers_due_before(clock() + 10_000)
    assert len([t for t in pending if t[3] == conv.id]) == 1  # one pending timer per conversation
