"""``auto_approve_after`` beside ``timeout``, and revisions linked to their parent request, through the real
runtime and store (SQLite and PostgreSQL) with a fake clock."""

from __future__ import annotations

import pytest

from bot.approvals.views import read_view
from bot.cli.audit import audit_records
from cards.approval_card import rules
from engine.loader import WorkflowInvalid, load_text
from tests.conftest import FakeClock
from tests.helpers import finished
from tests.test_approvals_deadlines import quiet
from tests.test_approvals_engine import MakeRuntime, actions, decide, waiting_request

LAZY = """
name: lazy
steps:
  ask:
    approval:
      title: "Ship?"
      approvers: ["user:alice", "user:carol"]
      required: 2
      veto: false
      auto_approve_after: 10m
      timeout: 1h
  ship: {needs: [ask], notify: shipped}
"""


async def test_nobody_objecting_approves_at_auto_approve_after(make_runtime: MakeRuntime) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, approval_id = await waiting_request(runtime, LAZY)
    async with runtime.store.engine.connect() as conn:
        stored = await read_view(conn, approval_id, clock())
    assert stored is not None and "approved " in rules(stored.view)
    assert "(in 10m) unless someone objects" in rules(stored.view), rules(stored.view)
    assert (await decide(runtime, approval_id, "alice", "approve")).resolved is False  # 1 of 2
    clock.advance(9 * 60)
    assert await runtime.fire_due() == 0
    clock.advance(61)
    assert await runtime.fire_due() == 1
    row = await finished(runtime, run_id)
    assert row.status == "succeeded"
    ask = {s.key: s for s in await runtime.store.step_rows(run_id)}["ask"]
    assert ask.outputs["auto"] is True and ask.outputs["approvers"] == ["alice"]
    records = await audit_records(runtime.store.engine, run_id)
    assert records[0]["detail"]["auto_approve_after"] == 600.0
    [auto] = [r for r in records if r["action"] == "auto_approved"]
    assert auto["actor"] == "timer" and auto["detail"]["reason"].startswith("no objection within 10m")
    assert (await runtime.approvals.get(approval_id)).status == "approved"
    clock.advance(3600)  # the timeout's timer still fires, and does nothing
    assert await runtime.fire_due() == 1
    await quiet(runtime, run_id)
    assert "expired" not in await actions(runtime, run_id)


async def test_an_objection_withholds_the_automatic_approval_until_the_timeout(
    make_runtime: MakeRuntime,
) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, approval_id = await waiting_request(runtime, LAZY)
    clock.advance(5 * 60)
    assert (await decide(runtime, approval_id, "carol", "reject", comment="not today")).resolved is False
    clock.advance(5 * 60 + 1)
    assert await runtime.fire_due() == 1
    await quiet(runtime, run_id)
    assert (await runtime.approvals.get(approval_id)).status == "pending"
    clock.advance(3600)
    assert await runtime.fire_due() == 1
    row = await finished(runtime, run_id)
    assert row.status == "failed"
    trail = await actions(runtime, run_id)
    assert trail[-2:] == ["auto_approve_withheld", "expired"]
    [withheld] = [r for r in await audit_records(runtime.store.engine, run_id) if r["action"] == trail[-2]]
    assert withheld["detail"] == {"objected_by": ["carol"]}


def test_auto_approve_after_must_come_before_the_timeout() -> None:
    text = LAZY.replace("auto_approve_after: 10m", "auto_approve_after: 2h")
    with pytest.raises(
        WorkflowInvalid, match=r"'auto_approve_after' \(7200s\) must be shorter than 'timeout'"
    ):
        load_text(text, "lazy.yaml")
