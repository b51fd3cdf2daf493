"""Approval cards by direct message on Discord (``notify: dm``), end to end: the real discord.py client
against the fake Discord (tests/fakes), which opens DM channels and pushes clicks made in them as
Discord does, with ``user`` instead of ``member`` and no guild (harness: tests/test_discord.py).

alice and carol are the approvers, named by user id; erin starts the runs from #ops.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.process import App
from bot.storage.tables import approvals, chat_cards
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import Json
from tests.helpers import eventually, finished, status_is, workflow
from tests.test_discord import apps, custom_ids, db_url, fake
from tests.test_discord_approvals import CAROL, ERIN, description, members, told, votes

__all__ = ["apps", "db_url", "fake", "members"]  # fixtures, used by name (members: carol and erin exist)

PAGE = """
name: page
steps:
  ask:
    approval:
      title: "Page the on-call?"
      approvers: ["user:ALICE_ID", "user:CAROL_ID"]
      required: 2
      notify: dm
  after:
    needs: [ask]
    notify: "paging, approved by ${{ join(steps.ask.outputs.approvers, ', ') }}"
""".replace("ALICE_ID", p.ALICE).replace("CAROL_ID", CAROL)


async def start_page(fake: FakeDiscord, app: App, workflows_dir: Path) -> tuple[str, str]:
    """``/workflow run page`` by erin in #ops: the run id and its approval request's id."""
    workflow(PAGE, workflows_dir)
    started = await fake.followup(await fake.slash("run", user=ERIN, name="page"))
    run_id = re.search(r"\(run ([0-9a-f]+)\)", started["content"]).group(1)  # type: ignore[union-attr]
    await status_is(app.runtime, run_id, "waiting")
    query = sa.select(approvals.c.id).where(approvals.c.run_id == run_id)
    async with app.engine.connect() as conn:
        return run_id, str((await conn.execute(query)).scalar_one())


async def card_row(app: App, approval: str, user: str, until: str) -> Any:
    """The stored DM card of ``user`` for the request, once its column ``until`` is set (polling)."""
    query = sa.select(chat_cards).where(chat_cards.c.key == f"approval:{approval}:dm:{user}")

    async def probe() -> Any:
        async with app.engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return row if getattr(row, until) is not None else None

    return await eventually(probe, message=f"{user}'s DM card to have {until}")


def approval_buttons_in(fake: FakeDiscord, channel: str) -> list[Json]:
    return [
        m for m in fake.channel_messages(channel) if any(c.startswith("sb:approval:") for c in custom_ids(m))
    ]


async def test_each_approver_gets_the_card_by_dm_and_a_click_there_counts_and_edits_both(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    app = await apps[0]()
    run_id, approval = await start_page(fake, app, workflows_dir)
    [alice_card] = await fake.until(lambda: fake.dm_messages(p.ALICE), 10)
    [carol_card] = await fake.until(lambda: fake.dm_messages(CAROL), 10)

    # One DM channel opened per approver (POST /users/@me/channels), each a type-1 channel with them.
    opened = sorted(str(c.body["recipient_id"]) for c in fake.calls("POST", "/users/@me/channels"))
    assert opened == sorted([p.ALICE, CAROL])
    for user in (p.ALICE, CAROL):
        dm = fake.channels[fake.dms[user]]
        assert dm["type"] == 1 and [r["id"] for r in dm["recipients"]] == [user]
    assert alice_card["channel_id"] == fake.dms[p.ALICE] and carol_card["channel_id"] == fake.dms[CAROL]
    for card in (alice_card, carol_card):
        assert card["embeds"][0]["title"] == "Page the on-call?"
        assert custom_ids(card) == [f"sb:approval:{approval}:{c}" for c in ("approve", "reject")]
    assert alice_card["nonce"] != carol_card["nonce"], "Discord dedupes nonces per author, not per channel"
    assert approval_buttons_in(fake, p.OPS) == [] and approval_buttons_in(fake, p.APPROVALS) == []
    # The stored refs name the real DM channels, so the edits below reach them.
    alice_row = await card_row(app, approval, p.ALICE, until="message_ref")
    assert alice_row.channel == f"dm:{p.ALICE}"
    assert alice_row.message_ref == f"{fake.dms[p.ALICE]}:{alice_card['id']}"

    first = await fake.click(f"sb:approval:{approval}:approve", alice_card, user=p.ALICE)
    assert "member" not in first and first["user"]["id"] == p.ALICE  # a click in a DM, as Discord sends it
    assert await told(fake, first) == "Approved by @Alice, 1 of 2"
    await fake.until(
        lambda: all(f"Approved by <@{p.ALICE}>, 1 of 2" in description(c) for c in (alice_card, carol_card)),
        10,
    )
    for card in (alice_card, carol_card):
        assert fake.calls("PATCH", f"/channels/{card['channel_id']}/messages/{card['id']}"), "edited in place"
        assert len(custom_ids(card)) == 2  # still open
    assert await votes(app, approval) == 1

    second = await fake.click(f"sb:approval:{approval}:approve", carol_card, user=CAROL)
    assert await told(fake, second) == "Approved by @Carol; the run continues"
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    await fake.until(lambda: alice_card["components"] == [] and carol_card["components"] == [], 10)
    assert f"Approved by <@{p.ALICE}> and <@{CAROL}> at" in description(carol_card)
    assert [m["id"] for m in fake.dm_messages(p.ALICE)] == [alice_card["id"]]  # never posted again
    assert [m["id"] for m in fake.dm_messages(CAROL)] == [carol_card["id"]]
    assert len(fake.calls("POST", "/users/@me/channels")) == 2  # each DM channel opened once, then reused


async def test_an_approver_who_refuses_dms_is_recorded_as_failed_and_the_run_keeps_waiting(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    fake.refuse_dms(CAROL)
    app = await apps[0]()
    run_id, approval = await start_page(fake, app, workflows_dir)
    [alice_card] = await fake.until(lambda: fake.dm_messages(p.ALICE), 10)

    row = await card_row(app, approval, CAROL, until="error")  # the outbox tried her DM and says why not
    assert "403 Cannot send messages to this user (code 50007)" in row.error
    assert row.error.endswith("(the user does not accept DMs from server members)")
    assert row.message_ref is None and row.sent_version == row.version  # permanent: not retried
    assert fake.dm_messages(CAROL) == []
    assert len(fake.calls("POST", f"/channels/{fake.dms[CAROL]}/messages")) == 1
    assert approval_buttons_in(fake, p.OPS) == []

    # The request still stands: alice's DM card works, and the run waits for the second approval.
    first = await fake.click(f"sb:approval:{approval}:approve", alice_card, user=p.ALICE)
    assert await told(fake, first) == "Approved by @Alice, 1 of 2"
    await fake.until(lambda: f"Approved by <@{p.ALICE}>, 1 of 2" in description(alice_card), 10)
    assert (await app.runtime.store.run_row(run_id)).status == "waiting"
    # carol can still decide: /approvals lists the request, with its buttons, to her alone.
    asked = await fake.interact(2, {"id": p.COMMAND_ID, "name": "approvals", "type": 1}, user=CAROL)
    listed = await fake.followup(asked)
    assert listed["flags"] & 64 and "Page the on-call?" in listed["embeds"][0]["fields"][0]["name"]
    assert f"sb:approval:{approval}:approve" in custom_ids(listed)
