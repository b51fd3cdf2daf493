"""Approvals by e-mail from a Slack run: the approver's address comes from their Slack profile (users.info
on the fake Slack Web API), the link's vote counts as their Slack identity, and the card in the channel
shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.process import start_app, stop_app
from bot.storage.tables import approval_votes
from tests.email_env import Mailbox, follow, link, serve_smtp, text_of
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, finished, workflow
from tests.test_slack import Harness, ephemeral_texts, settings_with, started_run

DEPLOY = """
name: deploy
steps:
  approve_prod:
    approval:
      title: "Deploy api to prod?"
      context: {Service: api}
      approvers: ["user:U0CAROL"]
      notify: [channel, email]
"""


@pytest.fixture
async def harness(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[tuple[Harness, Mailbox]]:
    box = Mailbox()
    server, port = await serve_smtp(box)
    async with FakeSlack() as fake:
        fake.add_user("U0CAROL", "carol")
        fake.users["U0CAROL"]["profile"]["email"] = "carol@acme.example"
        fake.add_user("U0ERIN", "erin")
        mail = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
        app = await start_app(settings_with(fake, tmp_path, workflows_dir, **mail))
        harness = Harness(fake, app, SlackSender(fake, f"{app.url}/slack/events"), workflows_dir)
        try:
            yield harness, box
        finally:
            await harness.send.close()
            await stop_app(app, grace=0.5, flush=0.5)
            server.close()
            await server.wait_closed()


async def test_a_slack_approver_decides_from_the_mail_sent_to_their_profile_address(
    harness: tuple[Harness, Mailbox],
) -> None:
    slack, box = harness
    workflow(DEPLOY, slack.workflows)
    await slack.send.command("run deploy", user="U0ERIN")
    run_id = await eventually(lambda: started_run(ephemeral_texts(slack.fake)))
    [mail] = await eventually(lambda: box.to("carol@acme.example"))
    assert "Deploy api to prod?" in text_of(mail)
    status, answer = await follow(link(mail, "approve"))
    assert status == 200 and "the run continues" in answer, answer
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    [request] = [a for a in await slack.app.runtime.approvals.pending() if a.run_id == run_id] or [None]
    assert request is None  # decided
    async with slack.app.engine.connect() as conn:
        voters = (await conn.execute(sa.select(approval_votes.c.actor, approval_votes.c.source))).all()
    assert [tuple(v) for v in voters] == [("slack:U0CAROL", "email")]

    def card_says_approved() -> bool:
        return any("Approved by" in str(c.params.get("blocks")) for c in slack.fake.delivered("chat.update"))

    await eventually(card_says_approved, message="the channel card redrawn with the e-mailed vote")
