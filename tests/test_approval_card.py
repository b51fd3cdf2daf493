"""The approval card, pure: what it says at each stage, its buttons, and that it fits every platform."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

import discord
import pytest
from slack_sdk.models.blocks import Block

from cards import discord as discord_cards
from cards import html, slack
from cards.approval_card import ApprovalView, Vote, approval_card, span
from cards.model import Card

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
PENDING = ApprovalView(
    approval_id="a1b2c3d4e5",
    run_id="3f9a2c71d0e4",
    workflow="deploy",
    step="approve_prod",
    title="Deploy api 1.4.2 to prod?",
    asked_by="@erin",
    description="Requested by erin",
    context={"Service": "api", "Version": "1.4.2"},
    approvers=("group:release-managers", "user:U024BE7LH"),
    required=2,
    expires_at=NOW + 4 * 3600,
    can_revise=True,
    now=NOW,
)


def choices(card: Card) -> list[str]:
    return [b.action_id for b in card.buttons]


def test_a_pending_request_shows_what_who_where_the_rules_and_three_buttons() -> None:
    card = approval_card(PENDING)
    assert (card.title, card.status, card.colour) == (
        "Deploy api 1.4.2 to prod?",
        "waiting for approval",
        "warning",
    )
    assert card.text == "Requested by erin"
    assert [(f.label, f.value) for f in card.fields] == [
        ("Service", "api"),
        ("Version", "1.4.2"),
        ("Asked by", "@erin"),
    ]
    assert card.context[0] == "deploy · run 3f9a2c · step approve_prod"
    assert card.context[1] == (
        "2 of group:release-managers, user:U024BE7LH · expires 12:00 UTC (in 4h), then it is rejected · no self-approval"
    )
    assert choices(card) == [
        "sb:approval:a1b2c3d4e5:approve",
        "sb:approval:a1b2c3d4e5:reject",
        "sb:approval:a1b2c3d4e5:changes",
    ]
    approve, reject, changes = card.buttons
    assert approve.style == "primary" and reject.style == "danger" and reject.confirm is not None
    assert changes.label == "Request changes…" and approve.confirm is None
    assert card.plain_text() == "Approval needed: Deploy api 1.4.2 to prod?"
    assert choices(approval_card(replace(PENDING, can_revise=False)))[-1].endswith(":reject")


def test_votes_so_far_are_counted_on_the_card() -> None:
    card = approval_card(replace(PENDING, votes=(Vote("@alice", "approve"),), now=NOW + 3600 + 1800))
    assert "Approved by @alice, 1 of 2" in card.text
    assert "(in 2h 30m)" in card.context[1]
    no_veto = replace(
        PENDING, veto=False, votes=(Vote("@alice", "approve"), Vote("@bob", "reject", "not today"))
    )
    text = approval_card(no_veto).text
    assert (
        "Rejected by @bob, 1 of 2 rejects end it" in text
        and "2 rejects end it" in approval_card(no_veto).context[1]
    )
    asked = approval_card(replace(PENDING, votes=(Vote("@carol", "changes", "bump  the\nversion"),)))
    assert "@carol asked for changes: “bump the version”" in asked.text


@pytest.mark.parametrize(
    ("status", "votes", "colour", "line"),
    [
        (
            "approved",
            (Vote("@alice", "approve"), Vote("@bob", "approve")),
            "success",
            "Approved by @alice and @bob at 14:02 UTC",
        ),
        (
            "rejected",
            (Vote("@bob", "reject", "not on a Friday"),),
            "danger",
            "Rejected by @bob at 14:02 UTC: “not on a Friday”",
        ),
        (
            "changes",
            (Vote("@carol", "changes", "bump it"),),
            "info",
            "Changes requested by @carol at 14:02 UTC: “bump it”. The work goes back for revision 2.",
        ),
        ("expired", (), "danger", "Expired at 14:02 UTC with no decision; then it is rejected."),
        ("cancelled", (), "neutral", "Closed: the run ended before a decision."),
    ],
)
def test_a_decided_request_shows_its_outcome_and_no_buttons(
    status: str, votes: tuple[Vote, ...], colour: str, line: str
) -> None:
    decided = NOW + 6 * 3600 + 2 * 60
    card = approval_card(replace(PENDING, status=status, votes=votes, decided_at=decided))
    assert card.buttons == () and card.colour == colour
    assert card.text.splitlines()[-1] == line
    assert "expires" not in card.context[1]  # a deadline no longer applies
    assert card.plain_text() == f"Deploy api 1.4.2 to prod?: {line}"


def test_an_automatic_approval_says_why() -> None:
    card = approval_card(
        replace(PENDING, status="approved", decided_at=NOW, auto_reason="auto_approve: staging")
    )
    assert card.text.endswith("Approved automatically at 08:00 UTC: auto_approve: staging")


def test_a_revision_links_to_the_feedback_that_asked_for_it() -> None:
    view = replace(PENDING, revision=2, previous_feedback=Vote("@carol", "changes", "bump the version"))
    card = approval_card(view)
    assert "Revised after @carol asked for changes: “bump the version”" in card.text
    assert "revision 2 of 3" in card.context[1]
    last = approval_card(replace(view, revision=3))
    assert "last revision: a request for changes now counts as a reject" in last.text
    decided = replace(
        view, revision=3, status="changes", votes=(Vote("@dan", "changes", "no"),), decided_at=NOW
    )
    assert "This was the last revision (3), so it counts as a reject." in approval_card(decided).text
    assert "revision" not in approval_card(PENDING).context[1]


def test_a_budget_request_leads_with_its_amount() -> None:
    view = replace(PENDING, kind="budget", context={"Vendor": "Acme", "Amount": "9,000.00 EUR"})
    assert [f.label for f in approval_card(view).fields] == ["Amount", "Vendor", "Asked by"]


def test_a_form_request_says_approving_asks_for_details() -> None:
    card = approval_card(replace(PENDING, kind="form", form_fields=("window", "ticket")))
    assert "Approving asks for details: window, ticket." in card.text
    assert card.buttons[0].label == "Approve…"


def test_span_is_coarse() -> None:
    assert [span(s) for s in (10, 60, 3600, 5400, 86400, 90000)] == [
        "under a minute",
        "1m",
        "1h",
        "1h 30m",
        "1d",
        "1d 1h",
    ]


def _huge() -> ApprovalView:
    context = {f"Field {i}": "x" * 900 for i in range(40)}
    votes = tuple(Vote(f"@person{i}", "approve" if i % 2 else "changes", "why " * 200) for i in range(30))
    return replace(
        PENDING, title="T" * 400, description="d" * 5000, context=context, votes=votes, required=50
    )


SAMPLES = {
    "pending": PENDING,
    "partial": replace(PENDING, votes=(Vote("@alice", "approve"),)),
    "final": replace(
        PENDING, status="approved", decided_at=NOW, votes=(Vote("@a", "approve"), Vote("@b", "approve"))
    ),
    "revision": replace(PENDING, revision=2, previous_feedback=Vote("@carol", "changes", "bump")),
    "budget": replace(PENDING, kind="budget", context={"Amount": "9,000.00 EUR"}),
    "form": replace(PENDING, kind="form", form_fields=("window",)),
    "hostile": replace(PENDING, title="<!channel> <@U1> & <b>", context={"<x>": "<script>alert(1)</script>"}),
    "huge": _huge(),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_renders_within_slack_limits(name: str) -> None:
    blocks = slack.render_blocks(approval_card(SAMPLES[name]))
    assert 0 < len(blocks) <= 50 and slack.text_length(blocks) <= 12_000
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    assert not [t for t in _mrkdwn(blocks) if "<" in t]  # user text cannot form mentions or links


def _mrkdwn(value: object) -> list[str]:
    if isinstance(value, list):
        return [t for v in value for t in _mrkdwn(v)]
    if not isinstance(value, dict):
        return []
    own = [value["text"]] if value.get("type") == "mrkdwn" else []
    return own + [t for v in value.values() for t in _mrkdwn(v)]


@pytest.mark.parametrize("name", SAMPLES)
def test_renders_within_discord_limits(name: str) -> None:
    message = discord_cards.render_message(approval_card(SAMPLES[name]))
    embed = discord.Embed.from_dict(message["embeds"][0])
    assert len(embed) <= 6000 and len(embed.fields) <= 25 and len(embed.description or "") <= 4096
    assert all(len(b["custom_id"]) <= 100 for row in message["components"] for b in row["components"])


class _Closed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.buttons = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(tag)
        self.buttons += tag == "button"

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag


@pytest.mark.parametrize("name", SAMPLES)
def test_renders_as_well_formed_html(name: str) -> None:
    card = approval_card(SAMPLES[name])
    parser = _Closed()
    parser.feed(html.render_html(card))
    assert parser.open == [] and parser.buttons == len(card.buttons)
    assert "<script>" not in html.render_html(card)
