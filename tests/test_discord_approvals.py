"""Approvals on Discord end to end: the real discord.py client against the fake Discord (tests/fakes), with
component and modal-submit INTERACTION_CREATE events pushed through its gateway (harness: tests/test_discord.py).

alice has the release-managers role and carol is named as a user, so they are the two approvers; erin
starts the runs and bob is no approver at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.process import App
from bot.storage.tables import approval_votes
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import Json
from tests.helpers import finished, status_is, workflow
from tests.test_discord import apps, custom_ids, db_url, fake, status_of

__all__ = ["apps", "db_url", "fake"]  # the harness's fixtures, used by name below

CAROL, ERIN = "1300000000000000303", "1300000000000000304"
DEPLOY = """
name: deploy
steps:
  build:
    run: ["echo", "built", "${{ approval.feedback }}"]
  approve_prod:
    needs: [build]
    approval:
      title: "Deploy api to prod?"
      context: {Service: api}
      approvers: ["group:release-managers", "user:carol"]
      required: 2
      channel: "#approvals"
      revise: build
  ship:
    needs: [approve_prod]
    notify: "shipped after ${{ join(steps.approve_prod.outputs.approvers, ', ') }}"
"""
# As a chat name, or as a ref (the late-click message has used both).
ALICE_SAID, CAROL_SAID = "@Alice", "@Carol"


@pytest.fixture(autouse=True)
def members(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two more members of the fake guild: carol and erin, with no roles."""
    for user, name in ((CAROL, "carol"), (ERIN, "erin")):
        monkeypatch.setitem(p.NAMES, user, name)
        monkeypatch.setitem(p.MEMBER_ROLES, user, [])
    yield


def description(message: Json) -> str:
    return "".join(e.get("description", "") for e in message["embeds"])


def approval_cards(fake: FakeDiscord) -> list[Json]:
    """The approval cards posted in #approvals, oldest first."""
    return [
        m
        for m in fake.channel_messages(p.APPROVALS)
        if str(m.get("nonce") or "").startswith("sb-card-approval:")
    ]


def answer_text(fake: FakeDiscord, interaction: Json) -> str | None:
    """What the person was told: the callback's message, else the first followup."""
    body = fake.responses.get(interaction["id"])
    if body is not None and body["type"] == 4:
        return str(body["data"].get("content", ""))
    sent = fake.followups.get(interaction["token"])
    return str(sent[0]["content"]) if sent else None


async def told(fake: FakeDiscord, interaction: Json) -> str:
    """Wait for the answer to an interaction; it must be ephemeral (seen by the clicker only)."""
    text: str = await fake.until(lambda: answer_text(fake, interaction))
    body = fake.responses[interaction["id"]]
    assert int((body.get("data") or {}).get("flags") or 0) & 64, body
    return text


async def votes(app: App, approval: str) -> int:
    query = sa.select(sa.func.count()).where(approval_votes.c.approval_id == approval)
    async with app.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def start_deploy(fake: FakeDiscord, app: App, workflows_dir: Path) -> tuple[str, Json, str]:
    """``/workflow run deploy`` by erin: the run id, its approval card and the request id."""
    workflow(DEPLOY, workflows_dir)
    started = await fake.followup(await fake.slash("run", user=ERIN, name="deploy"))
    run_id = re.search(r"\(run ([0-9a-f]+)\)", started["content"]).group(1)  # type: ignore[union-attr]
    [card] = await fake.until(lambda: approval_cards(fake))
    approve = next(c for c in custom_ids(card) if c.endswith(":approve"))
    return run_id, card, approve.split(":")[2]


async def click(fake: FakeDiscord, custom_id: str, message: Json, user: str) -> Json:
    """Push a button click; return it once the client has answered it (bench/lifecycle.py times that)."""
    interaction = await fake.click(custom_id, message, user=user)
    await fake.answered(interaction)
    return interaction


async def test_two_approvers_approve_a_non_approver_is_refused_and_a_late_click_is_told(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    app = await apps[0]()
    run_id, card, approval = await start_deploy(fake, app, workflows_dir)
    assert [b["label"] for row in card["components"] for b in row["components"]] == [
        "Approve",
        "Reject",
        "Request changes…",
    ]
    assert custom_ids(card) == [f"sb:approval:{approval}:{c}" for c in ("approve", "reject", "changes")]
    assert card["embeds"][0]["title"] == "Deploy api to prod?"
    assert "2 of group:release-managers, user:carol" in card["embeds"][0]["footer"]["text"]
    # Who asked is a Discord mention in a field value (Discord draws those there, not in the footer).
    assert {"name": "Asked by", "value": f"<@{ERIN}>", "inline": True} in card["embeds"][0]["fields"]
    nonce = f"sb-card-run:{run_id}"[:25]
    [status] = await fake.until(lambda: [m for m in fake.channel_messages(p.OPS) if m["nonce"] == nonce])
    await fake.until(lambda: status_of(status).endswith("waiting"))

    first = await click(fake, f"sb:approval:{approval}:approve", card, p.ALICE)
    assert await told(fake, first) == "Approved by @Alice, 1 of 2"
    await fake.until(lambda: f"Approved by <@{p.ALICE}>, 1 of 2" in description(card), 10)
    assert fake.edits[card["id"]], "edited in place"
    assert len(custom_ids(card)) == 3  # still open

    refused = await click(fake, f"sb:approval:{approval}:approve", card, p.BOB)
    assert await told(fake, refused) == (
        "You are not an approver for this request (approvers: group:release-managers, user:carol)"
    )
    assert await votes(app, approval) == 1  # not counted

    second = await click(fake, f"sb:approval:{approval}:approve", card, CAROL)
    assert await told(fake, second) == "Approved by @Carol; the run continues"
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    await fake.until(lambda: f"Approved by <@{p.ALICE}> and <@{CAROL}> at" in description(card), 10)
    assert card["components"] == []  # no buttons left
    assert status_of(card).endswith("approved")
    await fake.until(lambda: status_of(status).endswith("succeeded"), 10)

    # A click from a client still showing the old buttons.
    stale = {**card, "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Approve",
                                                                 "custom_id": f"sb:approval:{approval}:approve"}]}]}  # fmt: skip
    late = await click(fake, f"sb:approval:{approval}:approve", stale, p.ALICE)
    text = await told(fake, late)
    assert re.fullmatch(rf"Already approved by {ALICE_SAID}, {CAROL_SAID} at \d\d:\d\d UTC", text), text
    # And one carrying the card as it is now, without buttons (discord.py leaves those to on_interaction).
    again = await click(fake, f"sb:approval:{approval}:approve", card, p.BOB)
    assert (await told(fake, again)).startswith("Already approved by ")
    assert await votes(app, approval) == 2


async def test_request_changes_opens_a_modal_and_its_feedback_brings_revision_two(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    app = await apps[0]()
    run_id, card, approval = await start_deploy(fake, app, workflows_dir)
    opened = await click(fake, f"sb:approval:{approval}:changes", card, p.ALICE)
    answer = fake.responses[opened["id"]]
    assert answer["type"] == 9, f"the modal must be the first answer to the click: {answer}"
    modal = answer["data"]
    assert modal["custom_id"] == f"sb:form:approval:{approval}.changes"
    [field] = [row["components"][0] for row in modal["components"]]
    assert (field["custom_id"], field["style"], field["required"]) == ("feedback", 2, True)

    sent = await fake.submit(modal["custom_id"], {"feedback": "bump the version"}, user=p.ALICE)
    assert await told(fake, sent) == "Changes requested by @Alice; the run continues"

    # The build runs again with the feedback, and a new request is posted: revision 2 of 3.
    [_, new] = await fake.until(lambda: len(approval_cards(fake)) == 2 and approval_cards(fake), 10)
    assert "revision 2 of 3" in new["embeds"][0]["footer"]["text"]
    assert re.search(rf"Revised after <@{p.ALICE}> asked for changes: “bump the version”", description(new))
    build = {s.key: s for s in await app.runtime.store.step_rows(run_id)}["build"]
    assert build.attempt == 2 and build.outputs["stdout"].strip() == "built bump the version"
    await fake.until(lambda: "The work goes back for revision 2." in description(card), 10)
    assert card["components"] == [] and len(custom_ids(new)) == 3


async def test_an_old_card_still_works_after_a_restart(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    start, stop = apps
    first = await start()
    run_id, card, approval = await start_deploy(fake, first, workflows_dir)
    await status_is(first.runtime, run_id, "waiting")
    await stop(first)

    second = await start()  # the same database
    one = await click(fake, f"sb:approval:{approval}:approve", card, p.ALICE)
    assert await told(fake, one) == "Approved by @Alice, 1 of 2"
    two = await click(fake, f"sb:approval:{approval}:approve", card, CAROL)
    assert "the run continues" in await told(fake, two)
    assert (await finished(second.runtime, run_id)).status == "succeeded"
    await fake.until(lambda: card["components"] == [], 10)
    assert len(approval_cards(fake)) == 1  # edited in place, never posted again
