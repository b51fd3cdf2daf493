"""Conversations in the console: a user's DM with the assistant, the handover to an agent, and back.

The real app and its console on port 0; the real openai client against the fake OpenAI server; a real
headless Chromium for the whole "done when" flow, and plain HTTP for what a page must not see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr

from bot.config import Settings
from bot.process import App, start_app, stop_app
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import eventually
from tests.test_console import ARGS, CHROMIUM, send
from tests.test_console_api import Client, console_settings

expect.set_options(timeout=15_000)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def settings(tmp_path: Path, workflows_dir: Path, fake: FakeOpenAI | None) -> Settings:
    """The console's test settings, with the assistant on the fake server (or no LLM at all)."""
    llm: dict[str, Any] = {"openai_api_key": None, "openai_base_url": None}
    if fake is not None:
        llm = {"openai_api_key": SecretStr("k"), "openai_base_url": fake.base_url}
    return console_settings(tmp_path, workflows_dir).model_copy(
        update={**llm, "debounce": 0.05, "llm_retries": 0, "llm_timeout": 5.0}
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get update && apt-get install -y chromium`")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


async def act_as(page: Page, user: str, channel: str) -> None:
    """Pick the user in the page, then open a channel (``@alice`` is alice's DM)."""
    await page.locator("#user-picker").select_option(user)
    await expect(page.locator("#me-name")).to_have_text(user)
    await expect(page.locator("#conn-text")).to_have_text("Live")
    await page.locator(f'[data-channel="{channel}"]').click()
    name = "Direct message" if channel.startswith("@") else channel
    await expect(page.locator("#channel-name")).to_have_text(name)


async def test_alice_talks_to_the_assistant_then_to_dave(
    tmp_path: Path, workflows_dir: Path, fake: FakeOpenAI, browser: Browser
) -> None:
    app = await start_app(settings(tmp_path, workflows_dir, fake))
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        await page.goto(f"{app.url}/#ops")
        await expect(page.locator("#conn-text")).to_have_text("Live")
        messages = page.locator("#messages")

        # Alice asks in her DM; the assistant answers there, with a way to reach a person.
        await act_as(page, "alice", "@alice")
        await expect(page.locator("#dm-list .nav-item__label")).to_have_text("Direct message")
        fake.script(Text("Deploys are listed with /workflow list."))
        await send(page, "how do I deploy?")
        answer = messages.locator(".msg--bot", has_text="Deploys are listed with /workflow list.")
        await expect(answer).to_have_count(1)
        await expect(answer.locator(".msg__only")).to_have_count(0)  # the whole DM is private
        await answer.locator("button", has_text="Talk to a human").click()
        await expect(messages).to_contain_text("You are number 1 in the queue")

        # Dave finds the handover card in #agents and claims it.
        await act_as(page, "dave", "agents")
        card = messages.locator(".msg", has_text="Handover: alice")
        await expect(card.locator(".badge")).to_have_text("waiting for an agent")
        await card.locator("button", has_text="Claim").click()
        await expect(card.locator(".badge")).to_have_text("claimed by @dave")

        # Dave writes in the card's thread; alice reads it in her DM.
        await card.locator(".msg__replies").click()
        thread = page.locator("#thread-messages")
        await expect(thread).to_contain_text("Claimed by @dave")
        await page.locator("#thread-box").fill("Hi Alice, I am looking at your deploy now.")
        await page.locator("#thread-box").press("Enter")
        await expect(thread).to_contain_text("Hi Alice, I am looking at your deploy now.")

        await act_as(page, "alice", "@alice")
        await expect(messages).to_contain_text("dave from the support team has joined the conversation.")
        await expect(messages).to_contain_text("Hi Alice, I am looking at your deploy now.")
        await send(page, "Thank you, it works now")

        # Dave sees her answer in the thread, then resolves (after a confirmation); alice is told.
        await act_as(page, "dave", "agents")
        await card.locator(".msg__replies").click()
        await expect(thread).to_contain_text("Thank you, it works now")
        await card.locator("button", has_text="Resolve").click()
        confirm = page.locator("#confirm-dialog")
        await expect(confirm).to_contain_text("Resolve this conversation?")
        await confirm.locator("#confirm-yes").click()
        await expect(card.locator(".badge")).to_have_text("resolved")
        await expect(thread).to_contain_text("Transcript")

        await act_as(page, "alice", "@alice")
        await expect(messages).to_contain_text("dave has marked this conversation as resolved.")
        assert len(fake.completions) == 1
    finally:
        await page.close()
        await stop_app(app, grace=1.0, flush=1.0)
    assert problems == []


@pytest.fixture
async def no_llm(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    started = await start_app(settings(tmp_path, workflows_dir, None))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def http(no_llm: App) -> AsyncIterator[Client]:
    async with Client(no_llm.url) as client:
        yield client


async def test_without_an_llm_a_dm_goes_to_the_queue_and_stays_private(http: Client) -> None:
    sent = await http.post("/api/message", {"channel": "@alice", "text": "my deploy is stuck"})
    assert sent["message"]["channel"] == "@alice" and not sent["message"]["ephemeral"]

    async def told() -> list[dict[str, Any]] | None:
        dm = [m for m in await http.state("alice") if m["channel"] == "@alice"]
        return dm if any("number 1 in the queue" in m["text"] for m in dm) else None

    dm = await eventually(told)
    assert dm[0]["author"] == "alice" and dm[-1]["bot"]

    async def card() -> dict[str, Any] | None:
        found = [m for m in await http.state("dave") if m["text"].startswith("Handover: alice")]
        return found[0] if found else None

    assert (await eventually(card))["channel"] == "agents"  # for every agent, and for them only
    assert not [m for m in await http.state("bob") if m["channel"] == "agents"]
    assert not [m for m in await http.state("alice") if m["channel"] == "agents"]

    # Bob sees none of it, cannot write there, nor press its buttons.
    assert not [m for m in await http.state("bob") if m["channel"] == "@alice"]
    body = {"channel": "@alice", "text": "let me in"}
    refused = await http.post("/api/message", body, status=404, user="bob")
    assert "their own is @bob" in refused["error"]
    click = {"channel": "@alice", "message_id": dm[-1]["id"], "action_id": "x"}
    await http.post("/api/click", click, status=404, user="bob")
    await http.post("/api/message", {"channel": "@nobody", "text": "hi"}, status=404, user="bob")
    assert not [m for m in await http.state("alice") if m["text"] == "let me in"]


async def test_a_support_channel_message_is_answered_in_its_thread(
    tmp_path: Path, workflows_dir: Path
) -> None:
    app = await start_app(
        settings(tmp_path, workflows_dir, None).model_copy(update={"support_channels": ["#ops"]})
    )
    try:
        async with Client(app.url) as http:
            sent = await http.post("/api/message", {"channel": "ops", "text": "help!"})
            asked = sent["message"]["id"]

            async def answered() -> dict[str, Any] | None:
                found = [m for m in await http.state("bob") if "in the queue" in m["text"]]
                return found[0] if found else None

            told = await eventually(answered)
            assert (told["channel"], told["thread_id"]) == ("ops", asked)  # public, under her message
            # Chat in other channels is left alone.
            await http.post("/api/message", {"channel": "approvals", "text": "lunch?"})
            await http.post("/api/message", {"channel": "ops", "text": "still stuck", "thread": asked})
            await eventually(lambda: _relayed(http, "still stuck"))
            assert app.conversations is not None
            assert len(await app.conversations.store.pending()) == 1
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def _relayed(http: Client, text: str) -> bool | None:
    # A message in the conversation's thread reaches the agents under the handover card.
    messages = await http.state("dave")
    card = next((m for m in messages if m["text"].startswith("Handover: alice")), None)
    if card is None:
        return None
    return any(m["thread_id"] == card["id"] and text in m["text"] for m in messages) or None
