"""Approvals by e-mail against a real local SMTP server: the mail, the page its links open, the vote
(single use, expiry, wrong approver, self-approval, quorum), and the outbox retrying a dead server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.approvals.links import Link
from bot.identity import Place
from bot.platforms.email.adapter import EmailAdapter
from bot.process import App, start_app, stop_app
from bot.storage.tables import approval_audit, approval_votes, chat_posts
from tests.bot_process import free_port
from tests.email_env import Mailbox, email_settings, follow, html_of, link, serve_smtp, text_of
from tests.helpers import eventually, finished, workflow

RELEASE = """
name: release
steps:
  approve_prod:
    approval:
      title: "Release api to prod?"
      description: "Version 2.4 with the new billing"
      context: {{Service: api, Version: "2.4"}}
      approvers: ["user:alice", "user:bob", "user:erin"]
      required: {required}
      notify: {notify}
      timeout: 2h
  ship:
    needs: [approve_prod]
    notify: "shipped after ${{{{ join(steps.approve_prod.outputs.approvers, ', ') }}}}"
"""


@pytest.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    server, port = await serve_smtp(box)
    yield box, port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, mailbox: tuple[Mailbox, int]) -> AsyncIterator[App]:
    started = await start_app(email_settings(tmp_path, workflows_dir, mailbox[1]))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def release(app: App, required: int = 1, notify: str = "[channel, email]") -> tuple[str, str]:
    """erin starts the release from #ops: its run id and its approval's id."""
    text = RELEASE.format(required=required, notify=notify)
    origin = Place("console", "ops").to_dict()
    started = await app.runtime.submit(
        workflow(text), {}, started_by="console:erin", meta={"origin": origin, "who": {"name": "erin"}}
    )
    pending = await eventually(lambda: app.runtime.approvals.pending(started.run_id))
    return started.run_id, pending[0].id


async def rows(app: App, query: Any) -> list[Any]:
    async with app.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_each_approver_gets_the_cards_fields_and_two_links(
    app: App, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    _, approval = await release(app)
    await eventually(lambda: len(box.messages) == 3, message="a mail to alice, bob and erin")
    [mail] = box.to("alice@example.com")
    assert mail["Subject"] == "Approval needed: Release api to prod?"
    assert mail["From"] == "switchboard@switchboard.test"
    text, html = text_of(mail), html_of(mail)
    for part in (text, html):
        assert "Version 2.4 with the new billing" in part and "api" in part and "Asked by" in part
        assert f"approval {approval}" in part and "no self-approval" in part
    assert "/approvals/email/" in link(mail, "approve") and link(mail, "approve") != link(mail, "reject")
    assert link(mail, "approve") in html.replace("&amp;", "&")
    assert link(mail, "approve") != link(box.to("bob@example.com")[0], "approve")  # bound to the approver


async def test_opening_a_link_does_not_vote_and_confirming_votes_once(
    app: App, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    run_id, _ = await release(app)
    [mail] = await eventually(lambda: box.to("alice@example.com"))
    url = link(mail, "approve")
    async with aiohttp.ClientSession() as http, http.get(url) as page:  # what a mail scanner does
        assert page.status == 200 and "Confirm: Approve" in await page.text()
    assert await rows(app, sa.select(approval_votes)) == []
    status, answer = await follow(url, comment="looks good")
    assert status == 200 and "Approved by @alice; the run continues" in answer, answer
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    status, again = await follow(url)
    assert status == 410 and "used already" in again
    [vote] = await rows(app, sa.select(approval_votes))
    assert (vote.actor, vote.decision, vote.source, vote.comment) == (
        "console:alice",
        "approve",
        "email",
        "looks good",
    )
    audit = await rows(app, sa.select(approval_audit).where(approval_audit.c.action == "approve"))
    assert [(a.source, a.detail["address"]) for a in audit] == [("email", "alice@example.com")]
    # the reject link of a decided request says so
    status, late = await follow(link(box.to("bob@example.com")[0], "reject"))
    assert status == 409 and "Already decided" in late


async def test_two_approvals_by_link_make_the_quorum(app: App, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    run_id, _ = await release(app, required=2)
    await eventually(lambda: len(box.messages) == 3)
    status, first = await follow(link(box.to("alice@example.com")[0], "approve"))
    assert status == 200 and "Approved by @alice, 1 of 2" in first
    assert (await app.runtime.store.run_row(run_id)).status != "succeeded"
    status, second = await follow(link(box.to("bob@example.com")[0], "approve"))
    assert status == 200 and "the run continues" in second
    assert (await finished(app.runtime, run_id)).status == "succeeded"


async def test_the_starter_cannot_approve_by_link(app: App, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    await release(app)
    [mail] = await eventually(lambda: box.to("erin@example.com"))
    status, answer = await follow(link(mail, "approve"))
    assert status == 403 and "You started this run" in answer
    assert await rows(app, sa.select(approval_votes)) == []
    denied = await rows(app, sa.select(approval_audit).where(approval_audit.c.action == "denied"))
    assert [d.source for d in denied] == ["email"]


async def test_foreign_expired_and_someone_elses_links_are_refused(
    app: App, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    _, approval = await release(app)
    [mail] = await eventually(lambda: box.to("alice@example.com"))
    url = link(mail, "approve")
    status, altered = await follow(url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb"))
    assert status == 404 and "not made by this Switchboard" in altered
    adapter = app.platforms["email"]
    assert isinstance(adapter, EmailAdapter)
    old = (await adapter.links()).make(Link(approval, "console:alice", "alice@example.com", "approve", 1.0))
    status, expired = await follow(f"{app.url}/approvals/email/{old}")
    assert status == 410 and "expired" in expired
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(app.url, cookie_jar=jar) as http:
        async with http.post("/auth/dev", json={"user": "bob"}) as signed_in:
            assert signed_in.status == 200
        status, foreign = await follow(url, jar)
    assert status == 403 and "signed in as console:bob" in foreign
    assert await rows(app, sa.select(approval_votes)) == []


async def test_notify_email_alone_posts_no_approval_card(app: App, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    _, approval = await release(app, notify="email")
    await eventually(lambda: len(box.messages) == 3)
    from bot.storage.tables import chat_cards

    cards = await rows(app, sa.select(chat_cards.c.key).where(chat_cards.c.key.like(f"approval:{approval}%")))
    assert cards == []


async def test_a_dead_smtp_server_is_retried_until_it_answers(tmp_path: Path, workflows_dir: Path) -> None:
    port = free_port()  # nothing listens here yet
    app = await start_app(email_settings(tmp_path, workflows_dir, port))
    try:
        await release(app)

        async def failed_once() -> list[Any]:
            query = sa.select(chat_posts).where(chat_posts.c.platform == "email", chat_posts.c.attempts > 0)
            return [
                r
                for r in await rows(app, query)
                if r.status == "pending" and "unavailable" in (r.error or "")
            ]

        await eventually(failed_once, message="the first try to fail and be kept for a retry")
        box = Mailbox()
        server, _ = await serve_smtp(box, port)
        try:
            await eventually(lambda: len(box.messages) == 3, timeout=40.0, message="the retries to deliver")

            async def all_sent() -> bool:
                query = sa.select(chat_posts.c.status).where(chat_posts.c.platform == "email")
                return {s.status for s in await rows(app, query)} == {"sent"}

            await eventually(all_sent, message="every e-mail item marked sent")
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def test_an_approver_with_no_address_is_recorded_not_lost(
    app: App, mailbox: tuple[Mailbox, int]
) -> None:
    text = RELEASE.format(required=1, notify="email").replace('"user:erin"', '"user:dave"')
    started = await app.runtime.submit(workflow(text), {}, started_by="console:erin")
    await eventually(lambda: app.runtime.approvals.pending(started.run_id))

    async def failed() -> list[Any]:
        query = sa.select(chat_posts).where(chat_posts.c.status == "failed")
        return await rows(app, query)

    [row] = await eventually(failed)
    assert row.channel.endswith("/console:dave") and "SWITCHBOARD_EMAIL_ADDRESSES" in row.error


async def test_an_escalation_mails_the_approvers_it_adds(app: App, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    text = """
name: escalating
steps:
  ask:
    approval:
      title: "Rotate the keys?"
      approvers: ["user:alice"]
      notify: email
      escalation: [{after: 1s, add_approvers: ["user:alice", "user:bob"]}]
"""
    started = await app.runtime.submit(workflow(text), {}, started_by="console:erin")
    await eventually(lambda: box.to("alice@example.com"))
    [mail] = await eventually(lambda: box.to("bob@example.com"), message="bob's mail once he is added")
    assert "Rotate the keys?" in text_of(mail)
    status, answer = await follow(link(mail, "approve"))
    assert status == 200 and "the run continues" in answer
    assert (await finished(app.runtime, started.run_id)).status == "succeeded"
    assert len(box.to("alice@example.com")) == 1  # already mailed: not again


async def test_a_form_approval_is_approved_in_chat_but_its_reject_link_works(
    app: App, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    text = """
name: windowed
steps:
  ask:
    approval:
      title: "Pick a window"
      kind: form
      approvers: ["user:alice"]
      notify: email
      form:
        window: {type: string, required: true}
"""
    started = await app.runtime.submit(workflow(text), {}, started_by="console:erin")
    [mail] = await eventually(lambda: box.to("alice@example.com"))
    assert "approve it in chat" in text_of(mail)
    status, page = await follow(link(mail, "approve"))
    assert status == 409 and "approve it in chat instead" in page
    status, answer = await follow(link(mail, "reject"), comment="not this week")
    assert status == 200 and "Rejected by @alice" in answer, answer
    assert (await finished(app.runtime, started.run_id)).status == "failed"


async def test_the_smtp_sign_in_is_used(tmp_path: Path, workflows_dir: Path) -> None:
    box = Mailbox()
    server, port = await serve_smtp(box, login=("switchboard", "s3cret"))  # AUTH required
    settings = email_settings(tmp_path, workflows_dir, port, smtp_user="switchboard", smtp_password="s3cret")
    app = await start_app(settings)
    try:
        await release(app)
        await eventually(lambda: len(box.messages) == 3, message="the mails, sent after signing in")
    finally:
        await stop_app(app, grace=1.0, flush=1.0)
        server.close()
        await server.wait_closed()
