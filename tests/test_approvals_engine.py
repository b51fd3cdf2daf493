"""Approvals through the real runtime and store (SQLite and PostgreSQL), driven by a fake clock, no chat.

Quorum, veto, automatic approvals, budget tiers, the revision loop, escalation rungs and timeouts:
each decision goes through ``runtime.approvals.decide`` as a chat handler's would, and each deadline
through ``runtime.fire_due()`` after the fake clock moves (the alarm clock only rings it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.approvals.views import read_view
from bot.cli.audit import audit_records
from bot.errors import Conflict, NotPermitted
from bot.runtime.run_views import view_from_store
from bot.runtime.runtime import Runtime
from cards.approval_card import rules
from cards.run_card import run_card
from engine.loader import load_workflow
from tests.conftest import FakeClock
from tests.helpers import event_types, eventually, finished, status_is, workflow

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows"
MakeRuntime = Callable[..., Awaitable[Runtime]]


async def waiting_request(
    runtime: Runtime, text: str, inputs: dict[str, Any] | None = None
) -> tuple[str, str]:
    """Start a run of ``text`` as bob and wait until it waits; return (run id, approval id)."""
    started = await runtime.submit(workflow(text), inputs or {}, started_by="bob")
    await status_is(runtime, started.run_id, "waiting")
    [request] = [a for a in await runtime.approvals.pending() if a.run_id == started.run_id]
    return started.run_id, request.id


async def actions(runtime: Runtime, run_id: str) -> list[str]:
    """The run's audit trail, as action names, oldest first."""
    return [r["action"] for r in await audit_records(runtime.store.engine, run_id)]


async def decide(runtime: Runtime, approval_id: str, actor: str, decision: str, **kw: Any) -> Any:
    """Decide as a handler does, and wake the run when the decision settles the request."""
    outcome = await runtime.approvals.decide(approval_id, actor, decision, kw.pop("comment", None), **kw)
    if outcome.resolved:
        await runtime.wake(outcome.run_id)
    return outcome


QUORUM = """
name: quorum
steps:
  ask:
    approval: {title: "Ship?", approvers: ["user:carol", "user:dave", "group:release-managers"], required: 2}
  ship: {needs: [ask], notify: "by ${{ join(steps.ask.outputs.approvers, ', ') }}"}
"""


async def test_a_decision_through_the_runtime_claims_its_run_in_its_own_transaction(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(clock=FakeClock())
    run_id, approval_id = await waiting_request(runtime, QUORUM)
    await runtime.decide(approval_id, "carol", "approve")
    assert runtime.decided == {}  # a vote that does not settle the request claims nothing
    started = runtime.drivers_started
    outcome = await runtime.decide(approval_id, "dave", "approve")
    # Committed with the decision, before its wake has run: the run is this process's, read back.
    assert outcome.resolved and list(runtime.decided) == [run_id]
    loaded, _ = runtime.decided[run_id]
    assert [kind for _, kind, _ in loaded.mail] == ["approval"]
    row = await finished(runtime, run_id)
    assert row.status == "succeeded"
    assert runtime.drivers_started == started + 1  # resumed once, from what the decision read
    assert runtime.decided == {}
    with pytest.raises(Conflict, match="Already approved"):
        await runtime.decide(approval_id, "erin", "approve", groups=("release-managers",))
    assert runtime.decided == {}  # a refused decision claims nothing


async def test_two_of_n_resumes_the_run_exactly_once(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(clock=FakeClock())
    run_id, approval_id = await waiting_request(runtime, QUORUM)
    first = await decide(runtime, approval_id, "carol", "approve")
    assert (first.message, first.resolved) == ("Approved by carol, 1 of 2", False)
    with pytest.raises(Conflict, match="You already decided this request: approve"):
        await decide(runtime, approval_id, "carol", "approve")
    # Three more approvers at the same instant: exactly one of them completes the quorum.
    settled = await asyncio.gather(
        decide(runtime, approval_id, "dave", "approve", comment="lgtm"),
        decide(runtime, approval_id, "erin", "approve", groups=("release-managers",)),
        decide(runtime, approval_id, "frank", "approve", groups=("release-managers",)),
        return_exceptions=True,
    )
    late = [s for s in settled if isinstance(s, BaseException)]
    assert [s.resolved for s in settled if not isinstance(s, BaseException)] == [True]
    assert len(late) == 2 and all(str(e).startswith("Already approved by @carol, ") for e in late), late
    row = await finished(runtime, run_id)
    assert row.status == "succeeded"
    kinds = await event_types(runtime, run_id)
    assert kinds.count(("approval_decided", "ask")) == 1 and kinds.count(("step_started", "ship")) == 1
    assert (await actions(runtime, run_id)).count("late") == 2
    assert (await actions(runtime, run_id)).count("repeated") == 1  # carol's second click is on record
    with pytest.raises(Conflict, match=r"Already approved by @carol, @\w+ at \d\d:\d\d UTC"):
        await decide(runtime, approval_id, "gina", "approve", groups=("release-managers",))


VETO = """
name: veto
steps:
  ask:
    approval: {title: "Ship?", approvers: ["user:carol", "user:dave", "user:erin"], required: 2, veto: VETO}
  ship: {needs: [ask], notify: shipped}
"""


async def test_one_reject_is_a_veto_by_default(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(clock=FakeClock())
    run_id, approval_id = await waiting_request(runtime, VETO.replace("VETO", "true"))
    await decide(runtime, approval_id, "carol", "approve")
    outcome = await decide(runtime, approval_id, "dave", "reject", comment="not on a Friday")
    assert outcome.resolved
    row = await finished(runtime, run_id)
    assert row.status == "failed" and "not on a Friday" in row.error
    ask = {s.key: s for s in await runtime.store.step_rows(run_id)}["ask"]
    assert ask.outputs["decision"] == "rejected" and ask.outputs["rejected_by"] == ["dave"]


async def test_without_veto_rejects_count_like_approvals(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(clock=FakeClock())
    run_id, approval_id = await waiting_request(runtime, VETO.replace("VETO", "false"))
    one = await decide(runtime, approval_id, "carol", "reject")
    assert (one.message, one.resolved) == ("Rejected by carol, 1 of 2 rejections end it", False)
    assert not (await decide(runtime, approval_id, "dave", "approve")).resolved
    assert (await decide(runtime, approval_id, "erin", "reject")).resolved  # the second reject ends it
    row = await finished(runtime, run_id)
    assert row.status == "failed"


async def test_auto_approve_is_audited_with_its_reason_and_never_waits(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(clock=FakeClock())
    text = """
name: auto
inputs: {env: {type: string, default: prod}}
steps:
  ask:
    approval: {title: "Deploy?", approvers: ["user:carol"], auto_approve: "${{ inputs.env == 'staging' }}"}
  go: {needs: [ask], notify: "went"}
"""
    started = await runtime.submit(workflow(text), {"env": "staging"}, started_by="bob")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    assert ("run_waiting", None) not in await event_types(runtime, started.run_id)
    assert await runtime.approvals.pending() == []
    [record] = await audit_records(runtime.store.engine, started.run_id)
    assert (record["action"], record["step_key"]) == ("auto_approved", "ask")
    assert record["detail"]["reason"] == "auto_approve: ${{ inputs.env == 'staging' }}"


async def test_budget_tiers_of_the_example_workflow(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(clock=FakeClock(), workflows_dir=EXAMPLES)
    budget = load_workflow(EXAMPLES / "budget.yaml")
    small, middle, large = [
        (await runtime.submit(budget, {"item": item, "amount": amount}, started_by="dana")).run_id
        for item, amount in (("cable", 19.9), ("laptop", 2400), ("servers", 9000))
    ]
    row = await finished(runtime, small)
    assert row.status == "succeeded" and row.outputs["approved_by"] is None
    assert await actions(runtime, small) == ["auto_approved"]
    for run_id in (middle, large):
        await status_is(runtime, run_id, "waiting")
    by_run = {a.run_id: a for a in await runtime.approvals.pending()}
    assert (by_run[middle].approvers, by_run[middle].required) == (["group:finance", "user:cfo"], 1)
    assert (by_run[large].approvers, by_run[large].required) == (["group:finance"], 2)
    assert by_run[large].context["Amount"] == "9,000.00 EUR"

    assert (await decide(runtime, by_run[middle].id, "cfo", "approve")).resolved
    with pytest.raises(NotPermitted, match=r"approvers: group:finance\)"):
        await decide(runtime, by_run[large].id, "cfo", "approve")
    assert not (await decide(runtime, by_run[large].id, "fay", "approve", groups=("finance",))).resolved
    assert (await decide(runtime, by_run[large].id, "gus", "approve", groups=("finance",))).resolved
    assert (await finished(runtime, middle)).outputs["approved_by"] == "cfo"
    assert (await finished(runtime, large)).outputs["approved_by"] == "fay, gus"


REVISE = """
name: revise
steps:
  build:
    run:
      - python3
      - -c
      - "import sys; print('build', sys.argv[1], sys.argv[2])"
      - "${{ approval.revision }}"
      - "${{ approval.feedback }}"
    outputs: {line: "${{ result.stdout }}"}
  ask:
    needs: [build]
    approval:
      title: "Ship ${{ steps.build.outputs.line }}?"
      approvers: ["user:carol"]
      revise: build
      max_revisions: 2
  ship: {needs: [ask], notify: "shipped ${{ steps.build.outputs.line }}"}
"""


async def test_request_changes_reruns_the_revised_step_then_past_max_revisions_rejects(
    make_runtime: MakeRuntime,
) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, first = await waiting_request(runtime, REVISE)
    assert (await runtime.approvals.get(first)).title == "Ship build 0 ?"
    clock.advance(60)  # a review takes time (and each request of a step is stored with its own time)
    await decide(runtime, first, "carol", "changes", comment="bump the version")

    async def asked_again() -> str | None:
        pending = [a for a in await runtime.approvals.pending() if a.run_id == run_id]
        return pending[0].id if pending else None

    second = await eventually(asked_again)
    assert second != first
    build = {s.key: s for s in await runtime.store.step_rows(run_id)}["build"]
    assert build.attempt == 2 and build.outputs["line"] == "build 1 bump the version"
    assert (await runtime.approvals.get(second)).title == "Ship build 1 bump the version?"
    requested = [r for r in await audit_records(runtime.store.engine, run_id) if r["action"] == "requested"]
    assert [r["detail"]["revision"] for r in requested] == [1, 2]
    assert ("revision_requested", "ask") in await event_types(runtime, run_id)

    await decide(runtime, second, "carol", "changes", comment="still wrong")  # revision 2 of 2: a reject
    row = await finished(runtime, run_id)
    assert row.status == "failed" and "last allowed revision (2)" in row.error
    assert ("step_started", "ship") not in await event_types(runtime, run_id)


RETRIED = """
name: retried
steps:
  ask:
    approval: {title: "Ship?", approvers: ["user:carol"]}
  ship: {needs: [ask], run: ["echo", "shipped"]}
  announce: {needs: [ship], trigger: all_done, notify: "ship: ${{ run.status }}"}
"""


async def test_retrying_a_rejected_approval_asks_again_and_announces_after_it(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(clock=FakeClock())
    run_id, first = await waiting_request(runtime, RETRIED)
    await decide(runtime, first, "carol", "reject", comment="not on a Friday")
    assert (await finished(runtime, run_id)).status == "failed"
    steps = {s.key: s for s in await runtime.store.step_rows(run_id)}
    assert steps["announce"].outputs == {"text": "ship: failed"}

    await runtime.retry(run_id, "bob")

    async def asked_again() -> str | None:
        pending = [a for a in await runtime.approvals.pending() if a.run_id == run_id]
        return pending[0].id if pending else None

    second = await eventually(asked_again)
    assert second != first
    steps = {s.key: s for s in await runtime.store.step_rows(run_id)}
    assert steps["announce"].status == "pending"  # not a stale "✓" above a ship still to come
    # Stored as the step's second request, still in its first revision: nothing was revised.
    requested = [r for r in await audit_records(runtime.store.engine, run_id) if r["action"] == "requested"]
    assert [(r["detail"]["revision"], r["detail"]["request"]) for r in requested] == [(1, 1), (1, 2)]
    assert requested[1]["detail"]["parent"] == first
    async with runtime.store.engine.connect() as conn:
        stored = await read_view(conn, second, runtime.clock())
    assert stored is not None and (stored.view.revision, stored.view.request) == (1, 2)
    assert "request 2" in rules(stored.view) and "revision" not in rules(stored.view)
    view = await view_from_store(runtime.store, run_id)
    assert view is not None
    [ask] = [line for line in run_card(view).steps if line.name == "ask"]
    assert ask.detail == "request 2"
    await decide(runtime, second, "carol", "approve")
    assert (await finished(runtime, run_id)).status == "succeeded"
    steps = {s.key: s for s in await runtime.store.step_rows(run_id)}
    assert steps["announce"].outputs == {"text": "ship: succeeded"}
