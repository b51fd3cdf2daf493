"""The pure parts of approvals by e-mail: signed links, recipients, the message, `notify:` in the format,
and where addresses come from (the mapping setting, Slack's profile e-mail through a fake Slack API)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.approvals.email_requests import recipients
from bot.approvals.links import Link, LinkProblem, Links, expiry, link_id
from bot.config import Settings
from bot.errors import Conflict
from bot.platforms.email.addresses import Addresses
from bot.platforms.email.message import Envelope, approval_email
from bot.runtime.runtime import Runtime
from cards.approval_card import ApprovalView
from engine.loader import load_text
from engine.source_map import parse_yaml, plain
from engine.spec import ApprovalSpec
from tests.fakes.slack_api import FakeSlack
from tests.helpers import status_is, workflow
from tests.test_loader import validators

LINK = Link("a1b2c3", "console:alice", "alice@example.com", "approve", 2_000.0)


def test_a_link_reads_back_until_it_expires() -> None:
    links = Links(b"k" * 32)
    token = links.make(LINK)
    assert links.read(token, 1_999.0) == LINK
    # Another spelling of the same bytes (a 32-byte MAC leaves 2 spare bits in base64) is the same link.
    body, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelt = f"{body}.{mac[:-1]}{alphabet[alphabet.index(mac[-1]) ^ 1]}"
    assert respelt != token and link_id(links.read(respelt, 0.0)) == link_id(links.read(token, 0.0))
    with pytest.raises(LinkProblem) as late:
        links.read(token, 2_000.0)
    assert late.value.kind == "expired"


@pytest.mark.parametrize("change", ["other key", "altered", "cut", "junk"])
def test_a_link_not_made_here_is_foreign(change: str) -> None:
    token = Links(b"k" * 32).make(LINK)
    body, mac = token.split(".")
    forged = {
        "other key": Links(b"x" * 32).make(LINK),
        "altered": f"{Links(b'x' * 32).make(Link('a1b2c3', 'console:mallory', 'm@evil.test', 'approve', 2e9)).split('.')[0]}.{mac}",
        "cut": f"{body}.{mac[:-4]}",
        "junk": "not-a-link",
    }[change]
    with pytest.raises(LinkProblem) as problem:
        Links(b"k" * 32).read(forged, 0.0)
    assert problem.value.kind == "foreign"


def test_each_link_has_its_own_id_and_expires_with_the_request() -> None:
    links = Links(b"k" * 32)
    reject = Link(LINK.approval_id, LINK.actor, LINK.address, "reject", LINK.expires)
    assert link_id(links.read(links.make(LINK), 0.0)) != link_id(links.read(links.make(reject), 0.0))
    assert expiry(500.0, 100.0) == 500.0 and expiry(None, 100.0) == 100.0 + 72 * 3600


def test_recipients_are_identities_on_the_runs_platform() -> None:
    users = {"alice": ["release-managers"], "bob": ["release-managers"], "carol": []}
    approvers = ["user:U024", "user:slack:U999", "group:release-managers", "user:U024"]
    assert recipients(approvers, "slack", users) == ["slack:U024", "slack:U999"]
    assert recipients(["group:release-managers", "user:carol"], "console", users) == [
        "console:alice",
        "console:bob",
        "console:carol",
    ]


def test_notify_takes_one_way_or_a_list() -> None:
    base = {"title": "t"}
    assert ApprovalSpec(**base, notify="email").notify_mode == "email"
    assert ApprovalSpec(**base, notify=["email", "dm"]).notify_mode == "dm+email"
    for bad in (["channel", "dm"], ["email", "email"], [], "sms"):
        with pytest.raises(ValidationError):
            ApprovalSpec(**base, notify=bad)


def test_the_message_escapes_what_the_workflow_wrote() -> None:
    view = ApprovalView(
        "a1", "r1", "wf", "s", "<b>Ship</b>?", "@erin", context={"Note": "<script>x</script>"}
    )
    mail = approval_email(
        view, Envelope("sb@example.com", "a@example.com", "sb-email-1"), {"approve": "http://h/x?a=1&b=2"}
    )
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;" in html and "http://h/x?a=1&amp;b=2" in html
    assert "sb-email-1" in mail["Message-ID"]


async def test_addresses_come_from_the_mapping_then_slacks_profile() -> None:
    async with FakeSlack() as slack:
        slack.add_user("U0ANN", "ann")
        slack.users["U0ANN"]["profile"]["email"] = "ann@acme.example"
        slack.add_user("U0NOEMAIL", "nobody")
        settings = Settings(
            slack_bot_token="xoxb-fake-token",
            slack_api_url=slack.base_url,
            email_addresses={"console:alice": "alice@example.com", "U0BOB": "bob@example.com"},
        )
        addresses = Addresses(settings)
        assert await addresses.of("console:alice") == "alice@example.com"
        assert await addresses.of("slack:U0BOB") == "bob@example.com"  # a bare id in the mapping
        assert await addresses.of("slack:U0ANN") == "ann@acme.example"
        assert await addresses.of("slack:U0NOEMAIL") is None
        assert await addresses.of("console:erin") is None


QUORUM = """
name: q
steps:
  ask:
    approval: {title: "Go?", approvers: ["user:alice", "user:bob"], required: 2, notify: email}
"""


async def test_a_link_counts_once_in_the_store(runtime: Runtime) -> None:
    started = await runtime.submit(workflow(QUORUM), {}, started_by="console:erin")
    await status_is(runtime, started.run_id, "waiting")
    [request] = await runtime.approvals.pending(started.run_id)
    first = await runtime.decide(
        request.id, "console:alice", "approve", source="email", link="L1", aliases=("alice",)
    )
    assert first.message == "Approved by console:alice, 1 of 2" and not first.resolved
    with pytest.raises(Conflict, match="This link was used already: approve at"):
        await runtime.decide(
            request.id, "console:bob", "approve", source="email", link="L1", aliases=("bob",)
        )
    done = await runtime.decide(
        request.id, "console:bob", "approve", source="email", link="L2", aliases=("bob",)
    )
    assert done.resolved


@pytest.mark.parametrize("notify", ["email", "[channel, email]", "[dm, email]"])
def test_the_json_schema_takes_notify_email(notify: str) -> None:
    text = f"name: s\nsteps:\n  a: {{approval: {{title: t, notify: {notify}}}}}\n"
    load_text(text, "x")
    for validator in validators():
        assert list(validator.iter_errors(plain(parse_yaml(text)[0]))) == []
