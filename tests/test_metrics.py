"""``GET /metrics``: a known sequence of runs scraped over HTTP and parsed with prometheus-client's own
parser; who may scrape; and the shipped alert rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from bot.config import Settings
from bot.metrics import Figures, Metrics
from bot.process import App, start_app, stop_app
from bot.storage.tokens import TokenStore
from bot.tokens import acting_as, parse_scopes
from tests.helpers import eventually, finished, status_is, workflow

ROOT = Path(__file__).resolve().parent.parent
OK = """
name: ok
steps:
  hello:
    run: ["echo", "hello"]
"""
BROKEN = """
name: broken
steps:
  boom:
    run: ["sh", "-c", "echo nope >&2; exit 3"]
"""
GATED = """
name: gated
steps:
  build:
    run: ["echo", "built"]
  ship:
    needs: [build]
    approval:
      title: "Ship it?"
      approvers: ["user:carol"]
      timeout: 1h
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(app: App, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(f"{app.url}/metrics", headers=headers) as r:
        return r.status, await r.text()


def parse(text: str) -> Samples:
    """Every sample, keyed by its name and sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def run_the_sequence(app: App, workflows_dir: Path) -> str:
    """One run succeeds, one fails, one waits on its approval; returns the waiting run's id."""
    runtime = app.runtime
    ok = await runtime.submit(workflow(OK, workflows_dir), {}, "console:alice")
    broken = await runtime.submit(workflow(BROKEN, workflows_dir), {}, "console:alice")
    gated = await runtime.submit(workflow(GATED, workflows_dir), {}, "console:alice")
    assert (await finished(runtime, ok.run_id)).status == "succeeded"
    assert (await finished(runtime, broken.run_id)).status == "failed"
    await status_is(runtime, gated.run_id, "waiting")
    return gated.run_id


def settings(db_url: str, workflows_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=db_url,
        workflows_dir=workflows_dir,
        port=0,
        poll_interval=0.05,
        kill_grace=0.5,
        card_update_interval=0.0,
        **overrides,
    )


@pytest.mark.postgres
async def test_a_scrape_counts_the_runs_that_succeeded_failed_and_wait_on_an_approval(
    db_url: str, workflows_dir: Path
) -> None:
    app = await start_app(settings(db_url, workflows_dir))
    try:
        await run_the_sequence(app, workflows_dir)
        status, text = await scrape(app)  # from loopback, allowed by default
        assert status == 200, text
        samples = parse(text)
        for name in ("ok", "broken", "gated"):
            assert value(samples, "switchboard_runs_started_total", workflow=name) == 1
        assert value(samples, "switchboard_runs_finished_total", workflow="ok", outcome="succeeded") == 1
        assert value(samples, "switchboard_runs_finished_total", workflow="broken", outcome="failed") == 1
        assert value(samples, "switchboard_runs_finished_total", workflow="gated", outcome="succeeded") == 0
        # Steps: echo hello and echo built succeeded, the broken one failed.
        assert value(samples, "switchboard_step_duration_seconds_count", kind="run", outcome="succeeded") == 2
        assert value(samples, "switchboard_step_duration_seconds_count", kind="run", outcome="failed") == 1
        assert value(samples, "switchboard_approvals_pending") == 1
        assert 0 < value(samples, "switchboard_approval_next_expiry_seconds") <= 3600
        assert (
            value(samples, "switchboard_run_duration_seconds_count", workflow="broken", outcome="failed") == 1
        )
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def test_a_decision_is_measured_and_the_approval_leaves_the_pending_gauge(
    tmp_path: Path, workflows_dir: Path
) -> None:
    app = await start_app(settings(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", workflows_dir))
    try:
        run_id = await run_the_sequence(app, workflows_dir)
        [pending] = [a for a in await app.runtime.approvals.pending() if a.run_id == run_id]
        await app.runtime.decide(pending.id, "carol", "approve", background=False)
        await finished(app.runtime, run_id)

        async def decided() -> Samples | None:
            samples = parse((await scrape(app))[1])
            done = value(samples, "switchboard_runs_finished_total", workflow="gated", outcome="succeeded")
            return samples if done == 1 else None

        samples = await eventually(decided, message="the approved run to be counted")
        assert value(samples, "switchboard_approvals_pending") == 0
        assert ("switchboard_approval_next_expiry_seconds", ()) not in samples
        assert value(samples, "switchboard_approval_decision_seconds_count", outcome="approved") == 1
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def test_a_scraper_needs_a_token_or_an_allowed_address(tmp_path: Path, workflows_dir: Path) -> None:
    own = "s3cret-metrics-token"
    app = await start_app(
        settings(
            f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
            workflows_dir,
            metrics_token=own,
            metrics_allow=["10.0.0.0/8"],  # loopback, where the test connects from, is not in it
        )
    )
    try:
        status, text = await scrape(app)
        assert status == 403 and "SWITCHBOARD_METRICS_ALLOW" in text and "127.0.0.1" in text
        status, text = await scrape(app, "not-the-token")
        assert status == 401 and "not SWITCHBOARD_METRICS_TOKEN" in text
        tokens = TokenStore(app.engine)
        _, writer = await tokens.create("ci", parse_scopes(["runs:write"]), acting_as("user:ci"), "ops", 1.0)
        status, text = await scrape(app, writer)
        assert status == 403 and "runs:read" in text
        _, reader = await tokens.create(
            "prom", parse_scopes(["runs:read"]), acting_as("user:prom"), "ops", 1.0
        )
        assert (await scrape(app, reader))[0] == 200
        status, text = await scrape(app, own)
        assert status == 200 and "switchboard_runs_started_total" in text
        await tokens.revoke("prom", 2.0)
        assert (await scrape(app, reader))[0] == 401
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


def test_a_misspelt_allow_list_entry_is_refused_at_start(workflows_dir: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0/33' is not an address or a CIDR")):
        Settings(workflows_dir=workflows_dir, metrics_allow=["10.0.0/33"])


def test_two_apps_in_one_process_keep_their_own_registries() -> None:
    first, second = Metrics(), Metrics()
    first.runs_started.labels("ok").inc()
    assert first.registry.get_sample_value("switchboard_runs_started_total", {"workflow": "ok"}) == 1
    assert second.registry.get_sample_value("switchboard_runs_started_total", {"workflow": "ok"}) is None


def test_the_alert_rules_are_prometheus_rule_groups_over_our_metrics() -> None:
    rules = YAML(typ="safe").load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    [group] = rules["groups"]
    assert group["name"] and group["rules"]
    names = {rule["alert"] for rule in group["rules"]}
    assert {"SwitchboardRunsFailing", "SwitchboardApprovalAboutToExpire"} <= names
    assert {"SwitchboardQueueWaitTooLong", "SwitchboardOutboxStuck"} <= names
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert "switchboard_" in rule["expr"], rule
        assert rule["annotations"]["summary"], rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
    assert_exported([rule["expr"] for rule in group["rules"]])


def test_the_grafana_dashboard_is_json_whose_panels_query_our_metrics() -> None:
    board = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert board["title"] and board["panels"]
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs and all("switchboard_" in e for e in exprs)
    assert_exported(exprs)


def assert_exported(exprs: list[str]) -> None:
    """Every switchboard_* series an expression names is one /metrics serves (a renamed metric fails here)."""
    metrics = Metrics()
    metrics.snapshot.figures = Figures(
        1, 5.0, 60.0, {"slack": 1}, {"slack": 9.0}, {"slack": 1}, {"slack": 2.0}
    )
    metrics.runs_started.labels("ok").inc()
    metrics.runs_finished.labels("ok", "failed").inc()
    for family in (metrics.run_duration, metrics.step_duration, metrics.timer_lateness):
        family.labels(*["x"] * len(family._labelnames)).observe(1.0)
    for family in (metrics.approval_decisions,):
        family.labels("approved").observe(1.0)
    metrics.queue_wait.observe(1.0)
    metrics.queue_handle.observe(1.0)
    metrics.outbox_delivered.labels("slack").inc()
    metrics.outbox_errors.labels("slack", "false").inc()
    metrics.llm_tokens.labels("step", "prompt").inc()
    metrics.llm_errors.labels("step").inc()
    metrics.lease_takeovers.inc()
    metrics.leases_lost.inc()
    served = {name for name, _ in parse(generate_latest(metrics.registry).decode())}
    named = {m for expr in exprs for m in re.findall(r"switchboard_[a-z_]+", expr)}
    assert named <= served, named - served
