"""Sample cards and a form for tests/test_cards.py, and the snapshot files they render to.

The samples cover what the renderers must survive: a short running run, a 50-step failed run with long
errors, a card with 40 fields and 30 buttons, hostile text (``<script>``, quotes, Slack mentions), unicode,
and a flood of 300 step lines. ``update_snapshots`` rewrites tests/snapshots/cards/ from them; run it with
``python -m tests.test_cards --update`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cards import discord as discord_cards
from cards import html, slack
from cards.approval_card import ApprovalView, Vote, approval_card
from cards.conversation_card import rating_card
from cards.model import Button, Card, Confirm, Field, Form, FormField, StepLine, action_id
from cards.run_card import RunView, StepView, run_card

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "cards"
HOSTILE = "<script>alert(\"x\")</script> & 'quotes' <@U123> <!channel> @everyone"


def run_view(status: Any, steps: tuple[StepView, ...], **more: Any) -> RunView:
    return RunView(
        "3f9a2c71d0e4", "deploy", status, "Ada Lovelace", {"service": "api", "token": "••••"}, steps, **more
    )


STARTED: dict[str, Any] = {"started_at": 1_764_684_120.0, "elapsed": 185.0}  # 14:02 UTC, 3m 05s


def _fifty_steps() -> tuple[StepView, ...]:
    done = tuple(StepView(f"step-{i:02d}", "succeeded", duration=1.2 + i) for i in range(45))
    boom = StepView(
        "migrate-db", "failed", attempt=3, duration=75.0, error="psql: " + "connection refused\n" * 300
    )
    later = tuple(StepView(f"after-{i}", "cancelled", error="not started: the run failed") for i in range(4))
    return (*done, boom, *later)


NOW = 1_764_684_120.0  # 14:02 UTC


def approval(status: str = "pending", **more: Any) -> ApprovalView:
    """The deploy approval every approval sample varies: two release managers, expiring in 4 hours."""
    base: dict[str, Any] = {
        "approval_id": "a1b2c3d4e5",
        "run_id": "3f9a2c71d0e4",
        "workflow": "deploy_prod",
        "step": "approve_prod",
        "title": "Deploy api v1.23.0 to prod?",
        "asked_by": "@ada",
        "status": status,
        "description": "Requested by @ada",
        "context": {"Service": "api", "Version": "v1.23.0"},
        "approvers": ("group:release-managers", "user:carol"),
        "required": 2,
        "expires_at": NOW + 4 * 3600,
        "can_revise": True,
        "now": NOW,
        "decided_at": None if status == "pending" else NOW + 600,
    }
    return ApprovalView(**{**base, **more})


# One approval card per state: pending (new, half-approved, a revision, the last one, a form, a budget)
# and each way a request ends.
APPROVAL_CARDS = {
    "approval_pending": approval_card(approval()),
    "approval_half": approval_card(
        approval(votes=(Vote("@alice", "approve"), Vote("@bob", "changes", "bump the patch version")))
    ),
    "approval_revision": approval_card(
        approval(revision=2, previous_feedback=Vote("@bob", "changes", "bump the patch version"))
    ),
    "approval_last_revision": approval_card(approval(revision=3, max_revisions=3)),
    "approval_form": approval_card(approval(kind="form", form_fields=("ticket", "window"), veto=False)),
    "approval_budget": approval_card(
        approval(
            kind="budget",
            title="Order laptops for 2400 EUR",
            context={"Item": "laptops", "Amount": "2,400.00 EUR"},
            approvers=("group:finance", "user:cfo"),
            required=1,
            can_revise=False,
            allow_self_approval=False,
        )
    ),
    "approval_approved": approval_card(
        approval("approved", votes=(Vote("@alice", "approve"), Vote("@bob", "approve")))
    ),
    "approval_auto": approval_card(
        approval("approved", auto_reason="auto_approve: ${{ inputs.env == 'staging' }}")
    ),
    "approval_rejected": approval_card(
        approval("rejected", votes=(Vote("@bob", "reject", "not on a Friday"),))
    ),
    "approval_changes": approval_card(approval("changes", votes=(Vote("@bob", "changes", "bump it"),))),
    "approval_changes_last": approval_card(
        approval("changes", revision=3, votes=(Vote("@bob", "changes", "still wrong"),))
    ),
    "approval_expired": approval_card(approval("expired", on_timeout="reject")),
    "approval_cancelled": approval_card(
        approval("cancelled", note="A DM could not be sent; asked in #approvals")
    ),
}

CARDS = {
    **APPROVAL_CARDS,
    "run_running": run_card(
        run_view(
            "running",
            (
                StepView("build", "succeeded", duration=1.23),
                StepView("test", "running"),
                StepView("ship", "pending"),
            ),
        )
    ),
    "run_failed_50": run_card(
        run_view("failed", _fifty_steps(), error="step migrate-db failed: " + "x" * 2000)
    ),
    "run_succeeded": run_card(
        run_view(
            "succeeded",
            (StepView("build", "succeeded", duration=3700),),
            outputs={"url": "https://x/1", "n": 2},
        )
    ),
    # One card per run state, with the start time and elapsed time a live run carries.
    "run_pending": run_card(run_view("pending", (StepView("build", "pending"),), **STARTED)),
    "run_fanout": run_card(
        run_view(
            "running",
            (
                StepView("build", "succeeded", duration=12.5),
                StepView("shard", "running", items_done=37, items_total=120),
                StepView("notify", "pending"),
            ),
            **STARTED,
        )
    ),
    "run_waiting": run_card(
        run_view(
            "waiting",
            (StepView("build", "succeeded", duration=2.0), StepView("approve", "waiting")),
            waiting_for="approval at step approve",
            **STARTED,
        )
    ),
    "run_outputs": run_card(
        run_view(
            "succeeded",
            (StepView("build", "succeeded", duration=4.0), StepView("lint", "skipped")),
            outputs={f"build.out{i}": f"value {i} " + "long " * 30 for i in range(7)},
            **STARTED,
        )
    ),
    "run_cancelled": run_card(
        run_view(
            "cancelled",
            tuple(StepView(f"step-{i}", "cancelled") for i in range(5)),
            error="cancelled by Ada Lovelace",
            **STARTED,
        )
    ),
    # A rerun that failed again: two checkpoints to rewind to, a reused step and a step undone earlier.
    "run_rewindable": run_card(
        run_view(
            "failed",
            (
                StepView("build", "succeeded", duration=4.0, compensation="reused"),
                StepView("migrate", "succeeded", duration=9.0),
                StepView("deploy", "failed", duration=2.5, attempt=2, error="exited with code 1"),
                StepView("announce", "pending", compensation="undone"),
            ),
            error="step 'deploy' failed: exited with code 1",
            checkpoints=("built", "migrated"),
            rerun_of=("9b1e04c2aa10", "migrate"),
            **STARTED,
        )
    ),
    "run_rewinding": run_card(
        run_view(
            "compensating",
            (StepView("build", "succeeded"), StepView("deploy", "succeeded", compensation="running")),
            rewinding_to="build",
            **STARTED,
        )
    ),
    "run_compensating": run_card(
        run_view(
            "compensating",
            (StepView("reserve", "succeeded", compensation="running"), StepView("charge", "failed")),
            **STARTED,
        )
    ),
    "run_compensated": run_card(
        run_view(
            "compensated",
            (
                StepView("reserve", "succeeded", duration=1.0, compensation="succeeded"),
                StepView("charge", "failed", error="card declined"),
                StepView("ship", "skipped"),
            ),
            error="step charge failed: card declined",
            **STARTED,
        )
    ),
    # Sent back by "Request changes": build and the approval in revision 2, build retried once in it.
    "run_revised": run_card(
        run_view(
            "waiting",
            (
                StepView("build", "succeeded", attempt=3, duration=2.0, revision=2),
                StepView("tests", "succeeded", attempt=2, duration=1.5, revision=2),
                StepView("approve_prod", "waiting", attempt=2, revision=2),
                StepView("deploy", "pending"),
                StepView("announce", "pending"),
            ),
            waiting_for="approval at step approve_prod",
            **STARTED,
        )
    ),
    # A failed run retried: its failed step on attempt 2, the steps after it waiting their turn again.
    "run_retried": run_card(
        run_view(
            "running",
            (
                StepView("build", "succeeded", duration=2.0),
                StepView("migrate", "running", attempt=2),
                StepView("announce", "pending"),
            ),
            **STARTED,
        )
    ),
    "run_background_failed": run_card(
        run_view(
            "succeeded",
            (
                StepView("warm_cache", "failed", duration=300.0, error="timed out after 5m", background=True),
                StepView("deploy", "succeeded", duration=42.0),
            ),
            **STARTED,
        )
    ),
    "crowded": Card(
        title="Inventory " + "long title " * 30,
        status="warning",
        colour="warning",
        fields=tuple(Field(f"Field {i}", f"value {i} " + "v" * 380, short=i % 7 != 0) for i in range(40)),
        context=tuple(f"note {i}" for i in range(12)),
        buttons=tuple(
            Button(
                f"Button {i}",
                action_id("demo", "1", f"b{i}"),
                ("default", "primary", "danger")[i % 3],
                Confirm("Sure?", "Really?") if i % 3 == 2 else None,
            )
            for i in range(30)
        ),
    ),
    "hostile": Card(
        title=HOSTILE,
        text=HOSTILE,
        status="<b>bad</b>",
        fields=(Field("<b>label</b>", HOSTILE),),
        steps=(StepLine("✓", "<img src=x onerror=alert(1)>", "a & b"),),
        context=("<i>ctx</i> & more",),
        buttons=(
            Button('Go "now" <fast>', action_id("x", "1", "go"), "primary", Confirm("Sure <b>?", HOSTILE)),
        ),
    ),
    "unicode": Card(
        title="Déploiement 🚀 — 東京",
        text="Ça marche ✓ — naïve café, 👍🏽, שלום",
        status="succeeded",
        colour="success",
        fields=(Field("Région", "東京"),),
        steps=(StepLine("✓", "compilación", "1.2s"),),
    ),
    "rating": rating_card("c0ffee12345678"),  # after a resolve: the user's 1-5 buttons
    "flood": Card(
        title="flood",
        status="running",
        colour="info",
        steps=tuple(StepLine("✓", f"s{i:03d}", "d" * 250) for i in range(300)),
    ),
}
FORM = Form(
    form_id="sb:start:deploy",
    title="Start the deploy workflow for a service",
    fields=(
        FormField("service", "Service", required=True, help="Which service to deploy"),
        FormField("env", "Environment", "select", True, "staging", ("staging", "prod")),
        FormField("notes", "Notes", "multiline"),
        FormField("replicas", "Replicas", "number", default="3"),
        FormField("dry_run", "Dry run", "boolean", default="yes"),
        FormField("reason", "Reason <why>", help='Say "why" & <how>'),
    ),
    state='{"channel": "C1"}',
    intro="Deploys *one* service <now>.",
    errors={"service": "Unknown service <x>", "_form": "Try again & <soon>"},
)


def outputs() -> dict[str, str]:
    """Every snapshot file's expected text, by file name."""
    files: dict[str, Any] = {}
    for name, card in CARDS.items():
        files[f"{name}.slack.json"] = {"text": slack.render_text(card), "blocks": slack.render_blocks(card)}
        files[f"{name}.discord.json"] = discord_cards.render_message(card)
        files[f"{name}.html"] = html.render_html(card)
    files["form.slack.json"] = slack.render_modal(FORM)
    files["form.discord.json"] = discord_cards.render_modal(FORM)
    files["form.html"] = html.render_form_html(FORM)
    return {
        k: (v if isinstance(v, str) else json.dumps(v, indent=2, ensure_ascii=False)) + "\n"
        for k, v in files.items()
    }


def update_snapshots() -> None:
    """Write every snapshot anew (review the diff before committing)."""
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for name, text in outputs().items():
        (SNAPSHOTS / name).write_text(text, encoding="utf-8")
