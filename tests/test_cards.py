"""Cards on Slack, Discord and the console: saved snapshots, the platforms' own validators, and limits.

Snapshots live in tests/snapshots/cards/. A missing or different snapshot fails the test; to accept a
change, regenerate them and review the diff before committing:

    python -m tests.test_cards --update        (or SWITCHBOARD_UPDATE_SNAPSHOTS=1 python -m pytest ...)
"""

from __future__ import annotations

import json
import os
import re
import sys
from html.parser import HTMLParser
from typing import Any

import discord
import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.runtime.run_views import view_from_state
from cards import discord as discord_cards
from cards import html, slack
from cards.limits import clip, fit, take
from cards.model import Form, FormField
from cards.run_card import RunView, StepView, duration_text, run_card
from engine.approval_flow import revisions
from engine.signals import ApprovalDecided, Retry, Start, StepCompleted
from tests import test_core_approvals as core_approvals
from tests.card_samples import (
    APPROVAL_CARDS,
    CARDS,
    FORM,
    HOSTILE,
    SNAPSHOTS,
    outputs,
    run_view,
    update_snapshots,
)


@pytest.mark.parametrize("name", sorted(outputs()))
def test_snapshot(name: str) -> None:
    if os.environ.get("SWITCHBOARD_UPDATE_SNAPSHOTS") == "1":
        update_snapshots()
    path = SNAPSHOTS / name
    assert path.exists(), f"no snapshot {name}: run `python -m tests.test_cards --update` and review it"
    assert outputs()[name] == path.read_text(encoding="utf-8"), f"{name} changed: update and review it"


def _texts(value: Any, kind: str) -> list[str]:
    if isinstance(value, list):
        return [t for v in value for t in _texts(v, kind)]
    if not isinstance(value, dict):
        return []
    own = [value["text"]] if value.get("type") == kind and isinstance(value.get("text"), str) else []
    return own + [t for v in value.values() for t in _texts(v, kind)]


@pytest.mark.parametrize("name", CARDS)
def test_slack_blocks_pass_slack_sdk_and_limits(name: str) -> None:
    blocks = slack.render_blocks(CARDS[name])
    assert 0 < len(blocks) <= 50
    assert sum(len(t) for t in _texts(blocks, "mrkdwn") + _texts(blocks, "plain_text")) <= 12_000
    assert slack.render_text(CARDS[name])
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == block  # nothing unknown, nothing dropped
        texts = [f["text"] for f in block.get("fields", [])]
        assert len(texts) <= 10 and all(len(t) <= 2000 for t in texts)
        assert len(block.get("elements", [])) <= (10 if block["type"] == "context" else 25)
    assert len(blocks[0]["text"]["text"]) <= 150


@pytest.mark.parametrize("name", CARDS)
def test_discord_message_builds_with_discord_py_within_limits(name: str) -> None:
    message = discord_cards.render_message(CARDS[name])
    assert message["content"] == "" and len(message["embeds"]) == 1
    embed = discord.Embed.from_dict(message["embeds"][0])
    assert len(embed) <= 6000 and len(embed.description or "") <= 4096 and len(embed.title or "") <= 256
    assert len(embed.fields) <= 25 and len(embed.footer.text or "") <= 2048
    assert all(len(f.name or "") <= 256 and 0 < len(f.value or "") <= 1024 for f in embed.fields)
    view = discord.ui.View()
    for row, component in enumerate(message["components"]):
        for b in component["components"]:
            assert len(b["custom_id"]) <= 100 and len(b["label"]) <= 80
            view.add_item(
                discord.ui.Button(
                    style=discord.ButtonStyle(b["style"]), label=b["label"], custom_id=b["custom_id"], row=row
                )
            )
    built = [
        {**r, "components": [{k: v for k, v in b.items() if k != "disabled"} for b in r["components"]]}
        for r in view.to_components()
    ]
    assert built == message["components"]


CARD_TAGS = {"div", "header", "h3", "span", "p", "dl", "dt", "dd", "ol", "li", "footer", "button"}


class _Tags(HTMLParser):
    """Collects start tags and checks that every element is closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        assert self.open == []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.open += [] if tag == "input" else [tag]

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("name", CARDS)
def test_html_is_well_formed_and_escaped(name: str) -> None:
    parsed = _Tags(html.render_html(CARDS[name]))
    assert {tag for tag, _ in parsed.tags} <= CARD_TAGS
    assert len([t for t, _ in parsed.tags if t == "li"]) == len(CARDS[name].steps)  # the console shows all


def test_hostile_text_is_escaped_everywhere() -> None:
    card = CARDS["hostile"]
    parsed = _Tags(html.render_html(card))
    assert HOSTILE in "".join(parsed.text)
    button = next(attrs for tag, attrs in parsed.tags if tag == "button")
    assert button["data-confirm"] == HOSTILE and button["data-confirm-title"] == "Sure <b>?"
    blocks = slack.render_blocks(card)
    mrkdwn = _texts(blocks, "mrkdwn")
    escaped = "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'quotes' &lt;@U123&gt; &lt;!channel&gt;"
    assert escaped in "".join(mrkdwn)
    assert not [t for t in mrkdwn if re.search(r"[<>]|&(?!amp;|lt;|gt;)", t)]
    assert blocks[0]["text"]["text"] == clip(HOSTILE, 150)  # plain_text is never parsed for mentions or links
    assert "&lt;" in slack.render_text(card) and "<" not in slack.render_text(card)


def test_truncation_says_how_much_was_left_out() -> None:
    flood, crowded = CARDS["flood"], CARDS["crowded"]
    slack_flood = json.dumps(slack.render_blocks(flood), ensure_ascii=False)
    shown = len(re.findall(r"✓ s\d{3}", slack_flood))
    assert 0 < shown < 300 and f"…and {300 - shown} more steps" in slack_flood
    description = discord_cards.render_message(flood)["embeds"][0]["description"]
    assert description.endswith(f"…and {300 - description.count('✓')} more steps")
    slack_crowded = json.dumps(slack.render_blocks(crowded), ensure_ascii=False)
    assert "more fields" in slack_crowded and "…and 5 more buttons" in slack_crowded
    assert "…and 4 more notes" in slack_crowded  # 8 notes + that line + the buttons line = 10
    footer = discord_cards.render_message(crowded)["embeds"][0]["footer"]["text"]
    assert "…and 5 more buttons" in footer and re.search(r"…and \d+ more fields", footer)


def test_fifty_step_run_renders_everywhere() -> None:
    card = CARDS["run_failed_50"]
    assert len(card.steps) == 50 and card.colour == "danger"
    assert all(len(s.detail) <= 260 for s in card.steps)
    assert "✗ migrate-db" in json.dumps(slack.render_blocks(card), ensure_ascii=False)
    assert "✗ migrate-db" in discord_cards.render_message(card)["embeds"][0]["description"]
    assert html.render_html(card).count('class="step"') == 50


def test_slack_modal_is_a_valid_view() -> None:
    view = slack.render_modal(FORM)
    View(**view).validate_json()
    assert view["callback_id"] == FORM.form_id and view["private_metadata"] == FORM.state
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(inputs) == [f.name for f in FORM.fields]
    assert {b["element"]["action_id"] for b in inputs.values()} == {"value"}
    assert inputs["env"]["element"]["initial_option"]["value"] == "staging" and not inputs["env"]["optional"]
    assert inputs["dry_run"]["element"]["initial_option"]["value"] == "true"
    assert inputs["notes"]["element"]["multiline"]
    assert inputs["service"]["hint"]["text"] == "Which service to deploy" and inputs["reason"]["optional"]
    assert slack.modal_errors({"service": "Unknown service"}) == {"service": "Unknown service"}


def test_discord_modal_builds_with_discord_py() -> None:
    modal = discord_cards.render_modal(FORM)
    assert modal.pop("truncated") == ["reason"]  # optional fields go first; the caller pops this key
    built = discord.ui.Modal(title=modal["title"], custom_id=modal["custom_id"])
    for row in modal["components"]:
        (c,) = row["components"]
        built.add_item(
            discord.ui.TextInput(
                label=c["label"],
                style=discord.TextStyle(c["style"]),
                custom_id=c["custom_id"],
                required=c["required"],
                default=c.get("value"),
                placeholder=c.get("placeholder"),
            )
        )
    assert built.to_dict() == modal and len(modal["title"]) <= 45
    too_many = Form("f", "t", tuple(FormField(f"f{i}", "x", required=True) for i in range(6)))
    with pytest.raises(ValueError, match="6 required fields"):
        discord_cards.render_modal(too_many)


def test_form_html_shows_inputs_defaults_and_errors() -> None:
    parsed = _Tags(html.render_form_html(FORM))
    by_name = {attrs.get("name"): (tag, attrs) for tag, attrs in parsed.tags if attrs.get("name")}
    assert [by_name[n][0] for n in ("notes", "env", "dry_run")] == ["textarea", "select", "select"]
    assert by_name["replicas"][1]["type"] == "number" and "required" in by_name["service"][1]
    selected = [attrs["value"] for tag, attrs in parsed.tags if tag == "option" and "selected" in attrs]
    assert selected == ["staging", "true"]
    assert {"Unknown service <x>", "Try again & <soon>", 'Say "why" & <how>'} <= set(parsed.text)


RUN_CASES = [
    ("pending", ["cancel"], "neutral", "Queued."),
    ("running", ["cancel"], "info", "Running. 1 of 1 steps done."),
    ("waiting", ["cancel"], "warning", "Waiting for approval: Deploy api?"),
    ("compensating", ["cancel"], "warning", "Rolling back the completed steps."),
    ("failed", ["retry", "rollback"], "danger", "Failed at a: boom\nurl: https://x"),
    ("succeeded", ["rollback"], "success", "Succeeded.\nurl: https://x"),
    ("cancelled", ["rollback"], "neutral", "Cancelled with 1 of 1 steps done.\nurl: https://x"),
    ("compensated", [], "warning", "Rolled back: 0 steps undone. boom\nurl: https://x"),
]


@pytest.mark.parametrize(("status", "choices", "colour", "text"), RUN_CASES)
def test_run_card_keeps_the_buttons_that_apply(
    status: str, choices: list[str], colour: str, text: str
) -> None:
    step = StepView("a", "failed" if status == "failed" else "succeeded")
    more = {"error": "boom", "waiting_for": "approval: Deploy api?", "outputs": {"url": "https://x"}}
    card = run_card(run_view(status, (step,), **more))
    assert [b.action_id.rsplit(":", 1)[1] for b in card.buttons] == choices
    assert (card.colour, card.text) == (colour, text)
    assert all(b.confirm and b.style == "danger" for b in card.buttons if not b.action_id.endswith("retry"))
    assert card.title == "deploy · run 3f9a2c"


def test_counts_and_marks_agree_with_the_steps() -> None:
    """A cancelled run counts what finished; a rolled-back step shows ↺ and says so; each mark has its word."""
    cancelled = run_card(run_view("cancelled", tuple(StepView(f"s{i}", "cancelled") for i in range(5))))
    assert cancelled.text == "Cancelled with 0 of 5 steps done."
    assert {(line.icon, line.detail) for line in cancelled.steps} == {("⊘", "cancelled")}
    steps = (StepView("reserve", "succeeded", compensation="succeeded"), StepView("ship", "skipped"))
    undone = run_card(run_view("compensated", steps))
    assert undone.text == "Rolled back: 1 step undone."
    assert [(line.icon, line.detail) for line in undone.steps] == [("↺", "undone"), ("⏭", "skipped")]


def test_running_card_names_the_current_step_its_items_and_its_time() -> None:
    steps = (StepView("build", "succeeded"), StepView("shard", "running", items_done=37, items_total=120))
    card = run_card(run_view("running", steps, started_at=1_764_684_120.0, elapsed=185.0))
    assert card.text == "Running shard. 1 of 2 steps done."
    assert card.steps[1].detail == "37 of 120 items"
    assert ("Started", "14:02 UTC · for 3m 05s") in [(f.label, f.value) for f in card.fields]
    finished = run_card(run_view("succeeded", steps[:1], started_at=1_764_684_120.0, elapsed=185.0))
    assert ("Started", "14:02 UTC · took 3m 05s") in [(f.label, f.value) for f in finished.fields]


def test_outputs_read_as_a_few_lines_and_empty_inputs_as_a_dash() -> None:
    outputs = {f"k{i}": {"nested": i} if i == 0 else "v" * 200 for i in range(7)}
    card = run_card(
        RunView("r1", "deploy", "succeeded", "Ada", {"requester": None, "note": ""}, (), outputs=outputs)
    )
    lines = card.text.splitlines()
    assert lines[1] == 'k0: {"nested": 0}'
    assert lines[2].startswith("k1: vvv") and lines[2].endswith("…") and len(lines[2]) <= 84
    assert lines[-1] == "… and 2 more outputs in the thread" and len(lines) == 7
    assert {(f.label, f.value) for f in card.fields} >= {("requester", "—"), ("note", "—")}


def test_small_helpers() -> None:
    assert [duration_text(s) for s in (0.42, 75, 3725, 90000)] == ["0.4s", "1m 15s", "1h 02m", "1d 1h"]
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"
    assert take([1, 2, 3, 4], 3, "steps") == ([1, 2], "…and 2 more steps")
    assert fit(["a" * 10] * 3, 30, "x") == (["a" * 10], "…and 2 more x")


def test_a_revision_is_labelled_as_one_not_as_an_attempt() -> None:
    c = core_approvals.core(core_approvals.RELEASE)
    c.advance(Start(), 0)
    c.advance(StepCompleted("build", 1, {}), 1)
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "bump it"}, "bob"), 2)
    c.advance(StepCompleted("build", 2, {}), 3)
    assert revisions(c.state.workflow, c.state.steps) == {"build": 2, "ask": 2}

    lines = {line.name: line.detail for line in run_card(view_from_state(c.state, 4.0)).steps}
    assert "revision 2" in lines["build"] and "attempt" not in lines["build"]
    assert lines["ask"] == "revision 2"
    assert lines["deploy"] == ""
    # The run retried after a rejection: the approval is asked a third time (request 3), still in
    # revision 2; a retry's ask is neither a revision nor an attempt.
    c.advance(ApprovalDecided("ask", "rejected", {}, "not today"), 5)
    c.advance(Retry("alice"), 6)
    lines = {line.name: line.detail for line in run_card(view_from_state(c.state, 7.0)).steps}
    assert lines["ask"] == "revision 2 · request 3" and lines["announce"] == ""
    # A retry inside revision 2 (its third run in all) is that revision's second attempt.
    [retried] = run_card(run_view("running", (StepView("build", "running", attempt=3, revision=2),))).steps
    assert retried.detail == "revision 2 · attempt 2"


def test_every_approval_state_has_its_word_and_only_a_pending_one_has_buttons() -> None:
    words = {name: card.status for name, card in APPROVAL_CARDS.items()}
    assert set(words.values()) == {
        "waiting for approval",
        "approved",
        "rejected",
        "changes requested",
        "expired",
        "cancelled",
    }
    for name, card in APPROVAL_CARDS.items():
        pending = card.status == "waiting for approval"
        assert bool(card.buttons) == pending, name
        assert card.plain_text().startswith("Approval needed: " if pending else f"{card.title}: "), name
    assert [b.label for b in APPROVAL_CARDS["approval_form"].buttons] == [
        "Approve…",
        "Reject",
        "Request changes…",
    ]
    assert "revision 3 of 3" in APPROVAL_CARDS["approval_last_revision"].context[1]
    assert "last revision" in APPROVAL_CARDS["approval_last_revision"].text


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_cards --update")
    update_snapshots()
    print(f"wrote {len(outputs())} snapshots to {SNAPSHOTS}; review the diff before committing")
