"""The assistant's ``request_approval`` tool, end to end: the real openai client against the fake server
calls the tool, the approval machinery asks (card, self-approval refused, M-of-N, audit), and the
conversation is told the decision."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.cli.audit import audit_records
from bot.errors import NotPermitted
from bot.runtime import presence
from bot.storage.conversations.states import State
from bot.storage.tables import chat_cards
from cards.model import Card
from tests.conftest import FakeClock
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually

ALICE = person("alice", groups=("release-managers",))
ASK = {
    "subject": "Refund order 1182",
    "summary": "Alice asks for a 40 EUR refund; the parcel arrived broken.",
    "approvers": ["user:bob", "user:carol"],
    "required": 2,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env(make_runtime: Callable[..., Any], fake: FakeOpenAI) -> AsyncIterator[Env]:
    runtime = await make_runtime(openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0)
    presence.install(runtime)  # approval and run cards, as the bot process has them
    made = await make_env(runtime)
    yield made
    await made.service.stop()


async def _request(env: Env) -> Any:
    pending = [a for a in await env.runtime.approvals.pending() if a.title == ASK["subject"]]
    return pending[0] if pending else None


async def test_the_assistant_asks_for_an_approval_and_the_conversation_learns_the_decision(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(ToolCalls.one("request_approval", ASK), Text("I asked Bob and Carol; I'll tell you."))
    conv = await env.service.user_said(said(ALICE, "please refund order 1182"))
    assert conv is not None
    request = await eventually(lambda: _request(env))
    (result,) = [m["content"] for m in fake.completions[-1]["messages"] if m["role"] == "tool"]
    assert result.startswith("Asked user:bob, user:carol to approve 'Refund order 1182'")
    assert request.approvers == ["user:bob", "user:carol"] and request.required == 2
    assert request.description == ASK["summary"] and request.requested_by == "console:alice"
    # The approval card with its buttons goes to each approver by DM, as a workflow's request does.
    async with env.engine.connect() as conn:
        query = sa.select(chat_cards.c.channel, chat_cards.c.card).where(
            chat_cards.c.key.like(f"approval:{request.id}%")
        )
        placed = {r.channel: Card.from_dict(r.card) for r in (await conn.execute(query)).all()}
    assert set(placed) == {"@bob", "@carol"}
    assert {b.label for b in placed["@bob"].buttons} >= {"Approve", "Reject"}
    assert "Refund order 1182" in placed["@bob"].plain_text()

    # The approval rules apply: the user cannot approve their own request, and it takes two.
    with pytest.raises(NotPermitted, match="You started this run"):
        await env.runtime.decide(request.id, "console:alice", "approve", aliases=("alice",))
    first = await env.runtime.decide(request.id, "console:bob", "approve", aliases=("bob",), name="@bob")
    assert not first.resolved and "1 of 2" in first.message
    second = await env.runtime.decide(
        request.id, "console:carol", "approve", "fine", aliases=("carol",), name="@carol"
    )
    assert second.resolved

    told = await eventually(lambda: _said(env, "✅ Approved"))
    assert "@bob" in told and "@carol" in told and "Refund order 1182" in told and "(fine)" in told
    memory = await env.service.store.recall(conv.id, env.service.clock())
    assert any(v.startswith("✅ Approved by") for v in memory.values())
    actions = [r["action"] for r in await audit_records(env.engine, request.run_id)]
    assert actions[0] == "requested" and "denied" in actions and actions.count("approve") == 2
    assert (await env.get(conv.id)).state == State.AI_PROCESSING  # still the assistant's

    # The next turn sees the decision.
    fake.script(Text("It was approved."))
    await env.service.user_said(said(ALICE, "so?"))
    await eventually(lambda: _said(env, "It was approved."))
    assert "✅ Approved by" in fake.completions[-1]["messages"][0]["content"]


async def test_a_rejection_is_told_and_does_not_hand_the_conversation_over(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(ToolCalls.one("request_approval", {**ASK, "required": 1}), Text("Asked."))
    conv = await env.service.user_said(said(ALICE, "refund please"))
    assert conv is not None
    request = await eventually(lambda: _request(env))
    await env.runtime.decide(request.id, "console:bob", "reject", "not ours", aliases=("bob",), name="@bob")
    told = await eventually(lambda: _said(env, "❌ Not approved"))
    assert "Refund order 1182" in told
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


async def test_auto_approve_after_and_a_timeout_together_on_one_request(
    make_runtime: Callable[..., Any], fake: FakeOpenAI
) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock, openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0)
    env = await make_env(runtime)
    try:
        lazy = {**ASK, "required": 1, "auto_approve_after_minutes": 10, "timeout_minutes": 60}
        fake.script(ToolCalls.one("request_approval", lazy), Text("Asked."))
        await env.service.user_said(said(ALICE, "refund please"))
        request = await eventually(lambda: _request(env))
        assert request.expires_at == clock() + 3600
        clock.advance(9 * 60)
        assert await runtime.fire_due() == 0
        clock.advance(61)
        assert await runtime.fire_due() == 1  # nobody objected within 10 minutes
        told = await eventually(lambda: _said(env, "✅ Approved"))
        assert told == "✅ Approved automatically, as nobody objected in time: Refund order 1182"
        actions = [r["action"] for r in await audit_records(env.engine, request.run_id)]
        assert "auto_approved" in actions and "expired" not in actions
    finally:
        await env.service.stop()


async def test_bad_approvers_go_back_to_the_model_with_the_reason(env: Env, fake: FakeOpenAI) -> None:
    fake.script(
        ToolCalls.one("request_approval", {**ASK, "approvers": ["bob; rm -rf /"]}), Text("Let me fix that.")
    )
    await env.service.user_said(said(ALICE, "refund"))
    await eventually(lambda: _said(env, "Let me fix that."))
    (result,) = [m["content"] for m in fake.completions[-1]["messages"] if m["role"] == "tool"]
    assert "is not an approver; write 'user:NAME' or 'group:NAME'" in result
    assert await env.runtime.approvals.pending() == []


async def _said(env: Env, start: str) -> str | None:
    found = [t for t in await env.texts("@alice") if start in t]
    return found[0] if found else None
