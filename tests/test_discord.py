"""Discord end to end: the real ``start_app`` and discord.py client against a fake Discord (tests/fakes).

Each test starts Switchboard with DISCORD_TOKEN and the API and gateway URLs pointing at the fake, pushes
interactions through the gateway as Discord does, and reads what the client sent back over REST.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
import sqlalchemy as sa
from discord.gateway import DiscordWebSocket

from bot.cli import discord as discord_cli
from bot.config import Settings
from bot.platforms.discord.client import DEFAULT_API, DEFAULT_GATEWAY
from bot.process import App, start_app, stop_app
from bot.storage.tables import chat_cards
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord, Json
from tests.helpers import event_types, eventually, finished, workflow

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = """
name: deploy
description: Deploy a service
inputs:
  service: {type: string, required: true, description: Service to deploy}
  env: {type: string, enum: [staging, prod], default: staging}
permissions: {run: ["group:release-managers"]}
steps:
  build: {run: ["sleep", "0.6"]}
  announce: {needs: [build], notify: {text: "deployed ${{ inputs.service }} to ${{ inputs.env }}"}}
  tell: {needs: [build], notify: {channel: "#approvals", text: "${{ inputs.service }} is out"}}
"""
SLOW = """
name: slow
steps:
  wait: {run: ["sleep", "30"]}
"""


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: storage behaviour is covered elsewhere on both databases."""
    return f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()
    discord.http.Route.BASE = DEFAULT_API  # the adapter aimed these class attributes at the fake
    DiscordWebSocket.DEFAULT_GATEWAY = DEFAULT_GATEWAY


Starter = Callable[..., Awaitable[App]]


@pytest.fixture
async def apps(
    fake: FakeDiscord, settings_for: Callable[..., Settings]
) -> AsyncIterator[tuple[Starter, Callable[[App], Awaitable[None]]]]:
    """Start Switchboard against the fake (and stop it, at the end or when a test restarts it)."""
    running: list[App] = []

    async def start(**overrides: Any) -> App:
        settings = settings_for(
            discord_token=fake.token,
            discord_api_url=fake.api_url,
            discord_gateway_url=fake.gateway_url,
            console=False,
            port=0,
            card_update_interval=0.1,
            **overrides,
        )
        app = await start_app(settings)
        running.append(app)
        return app

    async def stop(app: App) -> None:
        running.remove(app)
        await stop_app(app, grace=0.5, flush=1.0)

    yield start, stop
    for app in list(running):
        await stop(app)


def labels(message: Json) -> list[str]:
    return [b.get("label", "") for row in message["components"] for b in row["components"]]


def custom_ids(message: Json) -> list[str]:
    return [b["custom_id"] for row in message["components"] for b in row["components"]]


def status_of(message: Json) -> str:
    return str(message["embeds"][0].get("author", {}).get("name", "")) if message["embeds"] else ""


def texts(messages: list[Json]) -> str:
    return "\n".join(m["content"] + "".join(e.get("description", "") for e in m["embeds"]) for m in messages)


async def test_run_defers_then_posts_the_card_edits_it_and_threads_the_details(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    app = await apps[0]()
    cmd = await fake.slash("run", name="deploy", inputs="service=api env=prod")
    answer = await fake.answered(cmd)
    assert answer["type"] == 5 and answer["data"]["flags"] & 64  # deferred, ephemeral
    assert "Started deploy" in (await fake.followup(cmd))["content"]

    [run] = await app.runtime.store.list_runs()
    assert run.started_by == f"discord:{p.ALICE}"
    assert run.meta["who"]["groups"] == ["release-managers"]  # the member's role ids, resolved to names
    assert run.meta["who"]["workspace"] == p.GUILD and run.meta["origin"]["channel"] == p.OPS
    assert (await finished(app.runtime, run.id)).status == "succeeded"

    first = fake.calls("POST", f"/channels/{p.OPS}/messages")[0].body
    assert first["nonce"] == f"sb-card-run:{run.id}"[:25] and first["enforce_nonce"] is True
    assert "Cancel" in labels(first) and f"sb:run:{run.id}:cancel" in custom_ids(first)
    [card] = fake.channel_messages(p.OPS)
    await fake.until(lambda: "succeeded" in status_of(card))
    assert fake.edits[card["id"]], "the status card is edited in place"
    assert "Cancel" not in labels(card)  # the finished card's buttons replace the old ones

    # The thread: started from the status message (Discord gives it the message's id), holding the details.
    replies = await fake.until(
        lambda: len(fake.channel_messages(card["id"])) >= 2 and fake.channel_messages(card["id"])
    )
    assert "deployed api to prod" in texts(replies) and "Run succeeded" in texts(replies)
    await fake.until(lambda: "api is out" in texts(fake.channel_messages(p.APPROVALS)))  # notify to a #name
    [thread_call] = fake.calls("POST", f"/channels/{p.OPS}/messages/{card['id']}/threads")
    assert thread_call.body["name"] == f"deploy · run {run.id[:6]}"

    refused = await fake.slash("run", user=p.BOB, name="deploy", inputs="service=api")
    assert "You may not run deploy" in (await fake.followup(refused))["content"]
    assert len(await app.runtime.store.list_runs()) == 1


async def test_autocomplete_suggests_the_workflows_this_member_may_run(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    workflow(SLOW, workflows_dir)
    await apps[0]()
    alice = await fake.answered(await fake.autocomplete("run", "name", "de"))
    assert alice["type"] == 8
    assert [c["value"] for c in alice["data"]["choices"]] == ["deploy", "slow"]
    bob = await fake.answered(await fake.autocomplete("run", "name", "", user=p.BOB))
    assert [c["value"] for c in bob["data"]["choices"]] == ["slow"]


async def test_missing_input_opens_a_modal_and_bad_values_come_back_as_errors(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    app = await apps[0]()
    answer = await fake.answered(await fake.slash("run", name="deploy"))
    assert answer["type"] == 9, "a modal must be the first answer: it cannot follow a defer"
    modal = answer["data"]
    assert modal["custom_id"].startswith("sb:form:run:deploy")
    inputs = {row["components"][0]["custom_id"]: row["components"][0] for row in modal["components"]}
    assert set(inputs) == {"service", "env"} and inputs["env"]["value"] == "staging"

    bad = await fake.submit(modal["custom_id"], {"service": "api", "env": "qa"})
    assert (await fake.answered(bad))["type"] == 5
    errors = await fake.followup(bad)
    assert "Nothing was started" in errors["content"] and "**Env**" in errors["content"]
    assert await app.runtime.store.list_runs() == []

    [fix] = custom_ids(errors)
    reopened = await fake.answered(await fake.click(fix, errors))
    assert reopened["type"] == 9
    again = {
        row["components"][0]["custom_id"]: row["components"][0] for row in reopened["data"]["components"]
    }
    assert again["service"]["value"] == "api" and again["env"]["value"] == "qa"
    assert again["env"]["label"].startswith("⚠")

    good = await fake.submit(reopened["data"]["custom_id"], {"service": "api", "env": "prod"})
    assert "Started deploy" in (await fake.followup(good))["content"]
    [run] = await app.runtime.store.list_runs()
    assert run.inputs == {"service": "api", "env": "prod"}


async def test_a_button_sent_before_a_restart_still_works_and_goes_away_after(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    start, stop = apps
    workflow(SLOW, workflows_dir)
    # In one test process the first runtime's pid stays alive, so its lease must expire before the second
    # runtime takes the run over (after a real restart the old pid is gone and the takeover is immediate).
    first = await start(lease_seconds=2.0)
    await fake.followup(await fake.slash("run", name="slow"))
    [run] = await first.runtime.store.list_runs()
    card = await fake.until(lambda: next(iter(fake.channel_messages(p.OPS)), None))
    cancel = f"sb:run:{run.id}:cancel"
    assert cancel in custom_ids(card)
    await stop(first)

    second = await start(lease_seconds=2.0)
    await fake.until(lambda: run.id in second.runtime.live, 10)  # resumed here, its step started again

    async def restarted() -> bool:
        return (await event_types(second.runtime, run.id)).count(("step_started", "wait")) >= 2

    await eventually(restarted)
    click = await fake.click(cancel, fake.messages[card["id"]])
    question = await fake.answered(click)  # Discord buttons have no confirm dialog: ask ephemerally
    assert question["type"] == 4 and question["data"]["flags"] & 64
    assert "Cancel this run?" in question["data"]["content"]
    prompt = fake.messages[fake.original[click["token"]]]
    [yes] = [c for c in custom_ids(prompt) if c.startswith("sb-ui:yes:")]

    confirm = await fake.click(yes, prompt)
    assert (await fake.answered(confirm))["type"] == 6
    outcome = await fake.followup(confirm)  # the question turns into the outcome, without buttons
    assert f"Cancelling run {run.id}" in outcome["content"] and outcome["components"] == []
    assert (await finished(second.runtime, run.id)).status == "cancelled"
    await fake.until(lambda: "cancelled" in status_of(card))
    assert "Cancel" not in labels(card)

    stale = await fake.click(cancel, fake.messages[card["id"]])
    answer = await fake.answered(stale)  # the card has no Cancel now: no question, an answer
    assert answer["type"] == 4 and answer["data"]["flags"] & 64
    assert "already cancelled" in answer["data"]["content"]


async def test_a_stale_command_and_an_unknown_button_get_an_answer(
    fake: FakeDiscord, apps: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await apps[0]()
    old = {"id": p.COMMAND_ID, "name": "deploy-now", "type": 1, "options": []}  # removed in an upgrade
    stale = await fake.interact(2, old)
    answer = await fake.answered(stale)
    assert answer["type"] == 4 and answer["data"]["flags"] & 64  # ephemeral
    assert "does not know /deploy-now" in answer["data"]["content"]
    assert "sync-commands" in answer["data"]["content"]

    message = {"id": fake.next_id(), "channel_id": fake.channels[p.OPS], "components": []}
    click = await fake.interact(3, {"custom_id": "sb:zz", "component_type": 2}, message=message)
    answer = await fake.answered(click)
    assert answer["type"] == 4 and answer["data"]["flags"] & 64
    assert answer["data"]["content"] == "Switchboard does not know this button."
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback for either"


async def test_a_429_is_retried_and_a_forbidden_channel_fails_with_a_hint(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    fake.rate_limit("POST", f"/channels/{p.OPS}/messages", retry_after=0.2)
    fake.forbid_channel(p.LOCKED)
    app = await apps[0]()
    await fake.followup(await fake.slash("run", name="deploy", inputs="service=api"))
    await fake.followup(await fake.slash("run", channel=p.LOCKED, name="deploy", inputs="service=web"))
    runs = await app.runtime.store.list_runs()
    for run in runs:
        assert (await finished(app.runtime, run.id)).status == "succeeded"  # chat failures never stall a run

    await fake.until(
        lambda: "succeeded" in status_of(next(iter(fake.channel_messages(p.OPS)), {"embeds": []}))
    )
    assert len(fake.calls("POST", f"/channels/{p.OPS}/messages")) >= 2  # the 429, then the retry

    async def locked_error() -> str | None:
        async with app.engine.connect() as conn:
            query = sa.select(chat_cards.c.error).where(chat_cards.c.channel == p.LOCKED)
            return (await conn.execute(query)).scalar()

    text = await eventually(locked_error)
    assert "Missing Access" in text and "Send Messages" in text and "Create Public Threads" in text


async def test_sync_commands_overwrites_the_guild_commands_then_global_ones(
    fake: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env |= {"DISCORD_TOKEN": fake.token, "SWITCHBOARD_DISCORD_API_URL": fake.api_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "discord", "sync-commands", "--guild", p.GUILD,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert f"Synced 7 command(s) to guild {p.GUILD}" in out.decode()
    [put] = fake.calls("PUT", f"/applications/{p.APP_ID}/guilds/{p.GUILD}/commands")
    by_name = {c["name"]: c for c in put.body}
    group = by_name["workflow"]
    assert set(by_name) == {"workflow", "approvals", "runners", "human", "agent", "queue", "conversation"}
    subcommands = {o["name"]: o for o in group["options"]}
    assert group["name"] == "workflow"
    assert set(subcommands) == {"run", "list", "help", "status", "cancel", "rewind", "rerun"}
    name = next(o for o in subcommands["run"]["options"] if o["name"] == "name")
    assert name["autocomplete"] is True and name["required"] is True
    assert not fake.identified, "syncing logs in over REST only, without the gateway"

    settings = Settings(discord_token=fake.token, discord_api_url=fake.api_url)
    assert await discord_cli.sync_commands(settings, argparse.Namespace(guild=None)) == 0
    assert "globally" in capsys.readouterr().out
    [put] = fake.calls("PUT", f"/applications/{p.APP_ID}/commands")
    assert [c["name"] for c in put.body] == [
        "workflow",
        "approvals",
        "runners",
        "human",
        "agent",
        "queue",
        "conversation",
    ]
