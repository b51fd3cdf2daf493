"""Approval deadlines through the real runtime and store (SQLite and PostgreSQL), driven by a fake clock.

Escalation rungs, timeouts and their ``on_timeout`` outcomes, a timer that falls due after the decision,
and a deadline that passed while no process ran. Each deadline fires through ``runtime.fire_due()``
after the fake clock moves, except at start, where the alarm rings it by itself.
"""

from __future__ import annotations

import time

import pytest

from bot.cli.audit import audit_records
from bot.errors import Conflict, NotPermitted
from bot.runtime.runtime import Runtime
from tests.conftest import FakeClock
from tests.helpers import event_types, eventually, finished
from tests.test_approvals_engine import MakeRuntime, actions, decide, waiting_request


async def quiet(runtime: Runtime, run_id: str) -> None:
    """Wait until the run has read every signal a timer gave it and is no longer loaded."""

    async def settled() -> bool:
        return run_id not in runtime.live and not await runtime.store.inbox_for(run_id)

    await eventually(settled, message=f"run {run_id} to read its signals and unload")


LADDER = """
name: ladder
steps:
  ask:
    approval:
      title: "Ship?"
      approvers: ["user:alice"]
      timeout: 4h
      escalation:
        - {after: 30m, remind: true}
        - {after: 2h, add_approvers: ["group:eng-directors"]}
  ship: {needs: [ask], notify: shipped}
"""


async def test_escalation_rungs_fire_once_each_and_added_approvers_may_decide(
    make_runtime: MakeRuntime,
) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, approval_id = await waiting_request(runtime, LADDER)
    clock.advance(29 * 60)
    assert await runtime.fire_due() == 0
    clock.advance(2 * 60)
    assert await runtime.fire_due() == 1 and await runtime.fire_due() == 0
    [reminder] = [r for r in await audit_records(runtime.store.engine, run_id) if r["action"] == "escalated"]
    assert reminder["detail"] == {
        "rung": 0,
        "remind": True,
        "add_approvers": [],
        "waiting_on": ["user:alice"],
    }
    with pytest.raises(NotPermitted, match="not an approver"):
        await decide(runtime, approval_id, "carol", "approve", groups=("eng-directors",))
    clock.advance(90 * 60)
    assert await runtime.fire_due() == 1 and await runtime.fire_due() == 0
    assert (await runtime.approvals.get(approval_id)).approvers == ["user:alice", "group:eng-directors"]
    assert (await actions(runtime, run_id)).count("escalated") == 2
    assert (await decide(runtime, approval_id, "carol", "approve", groups=("eng-directors",))).resolved
    assert (await finished(runtime, run_id)).status == "succeeded"
    clock.advance(3 * 3600)  # the timeout's timer still fires, and does nothing: the request is decided
    assert await runtime.fire_due() == 1
    await quiet(runtime, run_id)
    assert "expired" not in await actions(runtime, run_id)
    final = await runtime.store.run_row(run_id)
    assert final is not None and final.status == "succeeded"


async def test_a_timer_after_the_decision_does_nothing(make_runtime: MakeRuntime) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, approval_id = await waiting_request(runtime, LADDER)
    await decide(runtime, approval_id, "alice", "reject", comment="no")
    row = await finished(runtime, run_id)
    events = await event_types(runtime, run_id)
    clock.advance(5 * 3600)
    assert await runtime.fire_due() == 3  # two rungs and the timeout: each checks the row, finds it decided
    await quiet(runtime, run_id)
    assert await actions(runtime, run_id) == ["requested", "reject"]
    assert await event_types(runtime, run_id) == events
    again = await runtime.store.run_row(run_id)
    assert (
        row.status == "failed" and again is not None and (again.status, again.error) == ("failed", row.error)
    )


async def test_a_deadline_that_passed_while_nothing_ran_fires_at_the_next_start(
    make_runtime: MakeRuntime,
) -> None:
    # The deadline passed on the (fake) clock while no runtime ran, so the second runtime's alarm finds
    # the timer due the moment it starts: no test code calls fire_due here.
    clock = FakeClock(start=time.time() - 10 * 3600)
    first = await make_runtime(clock=clock)
    text = LADDER.replace("escalation:", "on_timeout: approve\n      escalation:")
    run_id, _ = await waiting_request(first, text)
    await first.stop()
    clock.advance(5 * 3600)
    second = await make_runtime(clock=clock)
    row = await finished(second, run_id)
    assert row.status == "succeeded"
    assert (await actions(second, run_id))[-1] == "expired"
    ask = {s.key: s for s in await second.store.step_rows(run_id)}["ask"]
    assert ask.outputs == {"decision": "approved", "timed_out": True}


@pytest.mark.parametrize(("on_timeout", "status"), [("approve", "succeeded"), ("cancel", "cancelled")])
async def test_on_timeout_approve_or_cancel(make_runtime: MakeRuntime, on_timeout: str, status: str) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    text = f"""
name: timeout
steps:
  ask: {{approval: {{title: "Ship?", approvers: ["user:alice"], timeout: 1h, on_timeout: {on_timeout}}}}}
  ship: {{needs: [ask], notify: shipped}}
"""
    run_id, approval_id = await waiting_request(runtime, text)
    clock.advance(3601)
    assert await runtime.fire_due() == 1
    row = await finished(runtime, run_id)
    assert row.status == status
    assert (("step_started", "ship") in await event_types(runtime, run_id)) == (on_timeout == "approve")
    assert (await actions(runtime, run_id))[-1] == "expired"
    with pytest.raises(Conflict, match="This request expired at"):
        await decide(runtime, approval_id, "alice", "approve")
