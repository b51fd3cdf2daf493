"""A run started over the REST API whose approval says ``notify: email`` mails its approvers as a CLI run
does (console users, addresses from SWITCHBOARD_EMAIL_ADDRESSES), through a real local SMTP server, and
the mail's link decides it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.process import App, start_app, stop_app
from tests.api_client import call, token
from tests.email_env import Mailbox, email_settings, follow, link, serve_smtp, text_of
from tests.helpers import eventually, finished

GATE = """
name: gate
steps:
  ask:
    approval:
      title: "Ship it?"
      approvers: ["user:alice", "user:bob"]
      notify: {notify}
      timeout: 1h
  ship:
    needs: [ask]
    run: ["echo", "shipped"]
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
    (workflows_dir / "gate.yaml").write_text(GATE.format(notify="email"))
    (workflows_dir / "both.yaml").write_text(GATE.format(notify="[channel, email]").replace("gate", "both"))
    started = await start_app(email_settings(tmp_path, workflows_dir, mailbox[1]))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.mark.parametrize("name", ["gate", "both"])
async def test_an_api_run_mails_its_approvers_and_the_link_decides(
    app: App, mailbox: tuple[Mailbox, int], name: str
) -> None:
    box, _ = mailbox
    ci = await token(app, "ci", "runs:read,runs:write", "ci")
    started = await call(app, "POST", "/api/v1/runs", ci, {"workflow": name})
    assert started.status == 201, started
    run_id = started.body["id"]
    await eventually(lambda: len(box.messages) == 2, message="a mail to alice and to bob")
    [mail] = box.to("alice@example.com")
    assert mail["Subject"] == "Approval needed: Ship it?" and box.to("bob@example.com")
    assert "Asked by: @ci" in text_of(mail), text_of(mail)  # the token's identity started it
    status, answer = await follow(link(mail, "approve"), comment="from my inbox")
    assert status == 200 and "Approved by @alice" in answer, answer
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    detail = (await call(app, "GET", f"/api/v1/runs/{run_id}", ci)).body
    assert detail["approvals"][0]["status"] == "approved"
