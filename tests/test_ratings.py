"""Rating a resolved conversation 1-5: the buttons on Slack (the real Bolt app, signed requests, the fake
Slack Web API) and in the console (its HTTP API), once only and by its user only; and the figures
``switchboard conversations stats`` prints from ratings, tokens and handle times."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.conversations.transcripts import stats
from bot.process import start_app, stop_app
from bot.runtime.costs import Prices
from bot.storage.conversations.states import State
from cards.conversation_card import RATINGS
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.fakes.slack_api import FakeSlack
from tests.helpers import eventually
from tests.test_cli import cli, environment
from tests.test_console_api import Client
from tests.test_console_conversations import settings as console_settings
from tests.test_slack import button
from tests.test_slack_conversations import HELP, Harness, harness, told  # noqa: F401  (a fixture)

FINISH = ToolCalls.one("finish", {"resolution": "Explained /workflow list."})


def rating_message(fake: FakeSlack, channel: str, thread: str) -> str | None:
    """The ts of the message with the rating buttons, in ``thread``."""
    for c in fake.delivered("chat.postMessage"):
        here = c.params["channel"] == channel and c.params.get("thread_ts") == thread
        if here and button(fake.message(channel, str(c.answer["ts"])), "rate_four") is not None:
            return str(c.answer["ts"])
    return None


async def test_slack_the_user_rates_once_and_nobody_else_can(
    harness: Callable[..., Awaitable[Harness]],  # noqa: F811
) -> None:
    h = await harness(support_channels=[HELP])
    h.llm.script(FINISH)
    ts = h.ts()
    asked = {"type": "message", "channel_type": "channel", "user": "U0ALICE", "ts": ts, "channel": HELP}
    await h._event({**asked, "text": "what can I run?"}, "Ev2000")
    rated_ts = await eventually(lambda: rating_message(h.fake, HELP, ts))
    message = h.fake.message(HELP, rated_ts)
    assert "How did we do?" in message["text"]
    assert [button(message, c) is not None for c in RATINGS] == [True] * 5

    async def click(choice: str, user: str) -> None:
        action = button(message, choice)
        assert action is not None
        assert (await h.send.click(action, HELP, rated_ts, user=user)).status == 200

    await click("rate_one", "U0ERIN")  # the thread is public, but it is not erin's conversation
    [refused] = await eventually(lambda: told(h.fake, "U0ERIN", "Only the person"))
    assert refused == "Only the person this conversation was with can rate it."
    await click("rate_four", "U0ALICE")
    await eventually(lambda: told(h.fake, "U0ALICE", "Thanks for rating this conversation 4 of 5."))
    await click("rate_five", "U0ALICE")  # a second click, or Slack retrying one, changes nothing
    [again] = await eventually(lambda: told(h.fake, "U0ALICE", "You rated this conversation"))
    assert again.startswith("You rated this conversation 4 of 5 at ") and again.endswith("given once.")
    conv = await h.service.store.get(await h.only_conversation())
    assert conv is not None and conv.state == State.FINISHED and conv.rating == 4


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_console_an_agents_resolve_asks_for_a_rating_and_the_click_records_it(
    tmp_path: Path, workflows_dir: Path, fake: FakeOpenAI
) -> None:
    chosen = console_settings(tmp_path, workflows_dir, fake).model_copy(
        update={"agent_groups": ["group:agents"], "agent_hourly_cost": 36.0, "cost_currency": "EUR"}
    )
    app = await start_app(chosen)
    try:
        async with Client(app.url) as http:
            fake.script(
                ToolCalls.one("handover_to_human", {"reason": "cannot_help", "summary": "Stuck deploy."})
            )
            await http.post("/api/message", {"channel": "@alice", "text": "my deploy is stuck"})
            card = await eventually(lambda: _message(http, "dave", "Handover: alice"))
            await http.post("/api/click", _click(card, "Claim"), user="dave")
            card = await eventually(lambda: _message(http, "dave", "Handover: alice", "Resolve"))
            await http.post("/api/click", _click(card, "Resolve"), user="dave")

            rating = await eventually(lambda: _message(http, "alice", "How did we do?"))
            assert rating["channel"] == "@alice"
            assert [b["label"] for b in rating["card"]["buttons"]] == ["1", "2", "3", "4", "5"]
            thanks = await http.post("/api/click", _click(rating, "5"))
            assert thanks["message"]["text"] == "Thanks for rating this conversation 5 of 5."
            again = await http.post("/api/click", _click(rating, "2"))
            assert again["message"]["text"].startswith("You rated this conversation 5 of 5 at ")

            # The dashboard shows the figures to agents, and tells anyone else why not.
            async with (await http.session("dave")).get("/dashboard/conversations") as res:
                assert res.status == 200
                page = await res.text()
            assert "5.0 of 5 (1 rating)" in page and "Cost (EUR)" in page
            assert 'href="/dashboard/conversations"' in page
            async with (await http.session("alice")).get("/dashboard/conversations") as res:
                assert res.status == 403
                assert "Only agents see the queue and the conversation figures. Agents: group:agents" in await res.text()
    finally:
        await stop_app(app, grace=1.0, flush=1.0)
    figures = (await _figures(app)).report()
    assert figures["satisfaction_avg"] == 5.0 and figures["ratings"] == 1 and figures["closed"] == 1


async def _figures(app: Any) -> Any:
    from bot.storage.database import create_engine

    engine = create_engine(app.settings.database_url)
    try:
        return await stats(engine)
    finally:
        await engine.dispose()


async def _message(http: Client, user: str, start: str, label: str | None = None) -> dict[str, Any] | None:
    for m in await http.state(user):
        if m["text"].startswith(start) and (
            label is None or any(b["label"] == label for b in (m.get("card") or {}).get("buttons", []))
        ):
            return m
    return None


def _click(message: dict[str, Any], label: str) -> dict[str, Any]:
    [chosen] = [b for b in message["card"]["buttons"] if b["label"] == label]
    return {"channel": message["channel"], "message_id": message["id"], "action_id": chosen["action_id"]}


@pytest.fixture
async def env(make_runtime: Callable[..., Any], fake: FakeOpenAI) -> AsyncIterator[Env]:
    runtime = await make_runtime(openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0)
    made = await make_env(runtime)
    yield made
    await made.service.stop()


async def test_stats_show_satisfaction_time_and_cost_of_ai_and_humans(
    env: Env, fake: FakeOpenAI, workflows_dir: Path
) -> None:
    alice, erin, dave = person("alice"), person("erin"), person("dave")
    fake.script(Text("Use /workflow list."), FINISH)
    first = await env.service.user_said(said(alice, "what can I run?"))
    assert first is not None
    await eventually(lambda: env.texts("@alice"))
    await env.service.user_said(said(alice, "thanks"))
    await eventually(lambda: _closed(env, first.id))
    fake.script(ToolCalls.one("handover_to_human", {"reason": "user_request", "summary": "a person"}))
    second = await env.service.user_said(said(erin, "a person please"))
    assert second is not None
    await eventually(lambda: _state(env, second.id, State.PENDING_HUMAN))
    await env.service.desk.claim(second.id, dave)
    await env.service.desk.resolve(second.id, dave)

    from bot.conversations.ratings import rate

    assert (await rate(env.service, first.id, alice, 5)).startswith("Thanks")
    assert (await rate(env.service, second.id, erin, 2)).startswith("Thanks")
    one, two = await env.get(first.id), await env.get(second.id)
    tokens = one.prompt_tokens + one.completion_tokens + two.prompt_tokens + two.completion_tokens
    assert one.prompt_tokens > 0 and one.completion_tokens > 0 and two.prompt_tokens > 0  # from usage
    assert one.ai_seconds > 0 and two.ai_seconds > 0

    prices = Prices(prompt_per_mtok=150.0, completion_per_mtok=600.0, agent_hourly=36.0, currency="EUR")
    figures = (await stats(env.engine, prices=prices)).report()
    assert figures["satisfaction_avg"] == 3.5 and figures["ratings"] == 2
    assert figures["llm_tokens"] == tokens
    expected_ai = (
        (one.prompt_tokens + two.prompt_tokens) * 150 + (one.completion_tokens + two.completion_tokens) * 600
    ) / 1e6
    assert figures["ai_cost"] == round(expected_ai, 4)
    assert figures["ai_cost_per_conversation"] == round(expected_ai / 2, 4)
    handle = (two.closed_at or 0) - (two.claimed_at or 0)
    assert figures["human_time_s"] == round(handle, 2)
    assert figures["human_cost"] == round(handle / 3600 * 36, 4)
    assert figures["ai_time_s"] == round(one.ai_seconds + two.ai_seconds, 2)
    assert figures["currency"] == "EUR"
    assert (await stats(env.engine)).report()["ai_cost"] is None  # no price table: no cost figure
    json.dumps(figures)

    # The CLI prints the same figures, with the currency, and says which settings give the costs.
    db = env.runtime.settings.database_url
    priced = environment(
        db,
        workflows_dir,
        SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK="150",
        SWITCHBOARD_LLM_PRICE_COMPLETION_PER_MTOK="600",
        SWITCHBOARD_AGENT_HOURLY_COST="36",
        SWITCHBOARD_COST_CURRENCY="EUR",
    )
    table = await cli(priced, "conversations", "stats")
    assert table.code == 0, table.out
    assert "satisfaction avg               3.5 of 5" in table.out
    assert f"ai cost                        {figures['ai_cost']} EUR" in table.out
    assert "human cost per conversation" in table.out and "(costs: set" not in table.out
    as_json = json.loads((await cli(priced, "conversations", "stats", "--json")).out)
    assert as_json["ratings"] == 2 and as_json["ai_cost"] == figures["ai_cost"]
    unpriced = await cli(environment(db, workflows_dir), "conversations", "stats")
    assert "ai cost                        n/a" in unpriced.out
    assert "(costs: set SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK" in unpriced.out


async def _closed(env: Env, conv_id: str) -> bool:
    return (await env.get(conv_id)).closed_at is not None


async def _state(env: Env, conv_id: str, state: State) -> bool:
    return (await env.get(conv_id)).state == state


async def test_the_api_rates_like_the_buttons_and_serves_the_stats_to_agents(
    db_url: str, workflows_dir: Path
) -> None:
    from tests.api_client import call, token
    from tests.test_api import problem
    from tests.test_api import settings as api_settings

    app = await start_app(api_settings(db_url, workflows_dir, agent_hourly_cost=30.0))
    try:
        visitor = await token(app, "widget", "conversations:write", "web-visitor")
        stranger = await token(app, "stranger", "conversations:write", "someone-else")
        agent = await token(app, "dave", "conversations:write", "dave", ("agents",))
        said = await call(app, "POST", "/api/v1/conversations/messages", visitor, {"text": "stuck"})
        conv_id = said.body["id"]
        rating = f"/api/v1/conversations/{conv_id}/rating"
        early = await call(app, "POST", rating, visitor, {"rating": 4})
        problem(early, 400, "bad-input", "once it is resolved")
        await eventually(lambda: _queued(app, conv_id))
        resolved = await call(app, "POST", f"/api/v1/conversations/{conv_id}/resolve", agent)
        assert resolved.status == 200, resolved
        problem(
            await call(app, "POST", rating, stranger, {"rating": 1}), 403, "not-permitted", "Only the person"
        )
        problem(await call(app, "POST", rating, visitor, {"rating": 6}), 422, "request-invalid")
        first = await call(app, "POST", rating, visitor, {"rating": 4})
        assert first.body["message"] == "Thanks for rating this conversation 4 of 5."
        again = await call(app, "POST", rating, visitor, {"rating": 1})
        assert again.status == 200 and again.body["message"].startswith("You rated this conversation 4 of 5")

        problem(await call(app, "GET", "/api/v1/conversations/stats", visitor), 403, "not-permitted")
        figures = await call(app, "GET", "/api/v1/conversations/stats", agent)
        assert figures.status == 200, figures
        assert figures.body["satisfaction_avg"] == 4.0 and figures.body["ratings"] == 1
        assert figures.body["ai_cost"] is None and figures.body["human_cost"] is not None
        assert figures.body["currency"] == "USD" and figures.body["closed"] == 1
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def _queued(app: Any, conv_id: str) -> bool:
    conv = await app.conversations.store.get(conv_id)
    return conv is not None and conv.state == State.PENDING_HUMAN
