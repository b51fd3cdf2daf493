"""Real workflows on the real runtime and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import NotPermitted
from bot.runtime.runtime import Runtime
from tests.helpers import event_types, eventually, finished, status_is, workflow

DEPLOY = (Path(__file__).resolve().parent.parent / "workflows" / "deploy.yaml").read_text()


async def test_example_deploy_runs_with_outputs(make_runtime, tmp_path: Path) -> None:
    runtime: Runtime = await make_runtime(workflows_dir=Path(__file__).resolve().parent.parent / "workflows")
    started = await runtime.submit(workflow(DEPLOY), {"service": "api", "env": "staging"}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    assert row.outputs["build"] == {"version": "built api"}
    assert row.outputs["announce"] == {"text": "Deploy of api finished: succeeded"}
    types = await event_types(runtime, started.run_id)
    assert types[0] == ("run_started", None)
    assert types[-1] == ("run_finished", None)
    assert types.index(("step_succeeded", "build")) < types.index(("step_started", "lint"))


async def test_retry_then_success_counts_attempts(runtime: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "tries"
    text = f"""
name: flaky
steps:
  flaky:
    run: ["python3", "-c", "import pathlib,sys; p=pathlib.Path({str(marker)!r}); n=int(p.read_text() if p.exists() else 0)+1; p.write_text(str(n)); sys.exit(0 if n>=3 else 1)"]
    retry: {{attempts: 3, initial: 0.05s, max: 0.1s}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    assert marker.read_text() == "3"
    types = await event_types(runtime, started.run_id)
    assert types.count(("step_retrying", "flaky")) == 2
    steps = {s.key: s for s in await runtime.store.step_rows(started.run_id)}
    assert steps["flaky"].attempt == 3


async def test_timeout_kills_the_process_and_fails_the_step(runtime: Runtime, tmp_path: Path) -> None:
    text = """
name: slow
steps:
  slow:
    run: ["sleep", "30"]
    timeout: 0.3s
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "failed"
    steps = {s.key: s for s in await runtime.store.step_rows(started.run_id)}
    assert steps["slow"].error == "timed out after 300ms"
    assert steps["slow"].error_kind == "timeout"


async def test_cancel_stops_running_steps(runtime: Runtime, tmp_path: Path) -> None:
    text = """
name: long
steps:
  long:
    run: ["sleep", "30"]
  after:
    needs: [long]
    run: ["true"]
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    await status_is(runtime, started.run_id, "running")
    await runtime.cancel(started.run_id, by="bob")
    row = await finished(runtime, started.run_id, timeout=5)
    assert row.status == "cancelled"
    steps = {s.key: s.status for s in await runtime.store.step_rows(started.run_id)}
    assert steps == {"long": "cancelled", "after": "skipped"}


async def test_failure_compensates_in_reverse_completion_order(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log"

    def step(name: str) -> str:
        return f'["sh", "-c", "echo {name} >> {log}"]'

    text = f"""
name: saga
on_failure: compensate
steps:
  a: {{run: {step("a")}, compensate: {{run: {step("undo-a")}}}}}
  b: {{needs: [a], run: {step("b")}, compensate: {{run: {step("undo-b")}}}}}
  c: {{needs: [b], run: ["false"]}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "compensated"
    assert log.read_text().split() == ["a", "b", "undo-b", "undo-a"]


async def test_rollback_to_a_step_undoes_only_later_steps(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log"

    def step(name: str) -> str:
        return f'["sh", "-c", "echo {name} >> {log}"]'

    text = f"""
name: chain
steps:
  a: {{run: {step("a")}, compensate: {{run: {step("undo-a")}}}}}
  b: {{needs: [a], run: {step("b")}, compensate: {{run: {step("undo-b")}}}}}
  c: {{needs: [b], run: {step("c")}, compensate: {{run: {step("undo-c")}}}}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    assert (await finished(runtime, started.run_id)).status == "succeeded"
    await runtime.rollback(started.run_id, by="alice", to="a")
    row = await status_is(runtime, started.run_id, "compensated")
    assert row.status == "compensated"
    assert log.read_text().split() == ["a", "b", "c", "undo-c", "undo-b"]


async def test_if_false_skips_and_none_failed_joins(runtime: Runtime) -> None:
    text = """
name: branches
inputs:
  fast: {type: boolean, default: false}
steps:
  quick:
    if: "${{ inputs.fast }}"
    run: ["true"]
  thorough:
    if: "${{ !inputs.fast }}"
    run: ["true"]
  join:
    needs: [quick, thorough]
    trigger: none_failed
    notify: "joined"
  strict:
    needs: [quick, thorough]
    run: ["true"]
"""
    started = await runtime.submit(workflow(text), {"fast": "false"}, "alice")
    row = await finished(runtime, started.run_id)
    steps = {s.key: s.status for s in await runtime.store.step_rows(started.run_id)}
    assert steps == {"quick": "skipped", "thorough": "succeeded", "join": "succeeded", "strict": "skipped"}
    assert row.status == "succeeded"


async def test_fan_out_respects_concurrency(runtime: Runtime, tmp_path: Path) -> None:
    text = f"""
name: fan
concurrency: 3
steps:
  each:
    for_each: "${{{{ fromJSON('[1, 2, 3, 4, 5, 6, 7]') }}}}"
    run: ["python3", "-c", "import os,time,pathlib; d=pathlib.Path({str(tmp_path)!r}); f=d/('live-'+os.environ['N']); f.touch(); n=len(list(d.glob('live-*'))); (d/('seen-'+os.environ['N'])).write_text(str(n)); time.sleep(0.15); f.unlink()"]
    env: {{N: "${{{{ index }}}}"}}
  total:
    needs: [each]
    notify: "${{{{ steps.each.outputs['items'][6] && !steps.each.outputs['items'][7] && 7 }}}} items"  # no length() on GitHub
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    seen = [int((tmp_path / f"seen-{i}").read_text()) for i in range(7)]
    assert max(seen) <= 3
    assert row.outputs["total"] == {"text": "7 items"}


async def test_approval_waits_without_a_task_and_resumes(runtime: Runtime) -> None:
    text = """
name: gated
steps:
  ask:
    approval: {title: "Ship it?", approvers: ["user:carol", "user:dave"], required: 2}
  ship:
    needs: [ask]
    notify: "approved by ${{ join(steps.ask.outputs.approvers, ', ') }}"
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    await status_is(runtime, started.run_id, "waiting")
    assert started.run_id not in runtime.live  # a waiting run holds no task
    [request] = await runtime.approvals.pending()
    with pytest.raises(NotPermitted, match="not an approver"):
        await runtime.approvals.decide(request.id, "mallory", "approve", None)
    first = await runtime.approvals.decide(request.id, "carol", "approve", None)
    assert first.message == "Approved by carol, 1 of 2" and not first.resolved
    second = await runtime.approvals.decide(request.id, "dave", "approve", "lgtm")
    assert second.resolved
    await runtime.wake(second.run_id)
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    assert row.outputs["ship"] == {"text": "approved by carol, dave"}


async def test_self_approval_is_refused_by_default(runtime: Runtime) -> None:
    text = """
name: selfish
steps:
  ask: {approval: {title: "Go?"}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    await status_is(runtime, started.run_id, "waiting")
    [request] = await runtime.approvals.pending()
    with pytest.raises(NotPermitted, match="You started this run"):
        await runtime.approvals.decide(request.id, "alice", "approve", None)
    outcome = await runtime.approvals.decide(request.id, "bob", "reject", "not today")
    await runtime.wake(outcome.run_id)
    row = await finished(runtime, started.run_id)
    assert row.status == "failed"
    assert "not today" in row.error


async def test_sub_workflow_outputs_become_step_outputs(runtime: Runtime, workflows_dir: Path) -> None:
    workflow(
        """
name: child
inputs: {who: {type: string, required: true}}
outputs: {greeting: "hello ${{ inputs.who }}"}
steps:
  hi: {notify: "hi ${{ inputs.who }}"}
""",
        workflows_dir,
    )
    parent = workflow("""
name: parent
steps:
  call: {workflow: child, with: {who: world}}
  after: {needs: [call], notify: "${{ steps.call.outputs.greeting }}"}
""")
    started = await runtime.submit(parent, {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded", row.error
    assert row.outputs["after"] == {"text": "hello world"}


async def test_secrets_are_masked_in_events_and_outputs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value")
    text = """
name: secretive
secrets: [DEPLOY_TOKEN]
steps:
  use:
    run: ["sh", "-c", "echo token=$T"]
    env: {T: "${{ secrets.DEPLOY_TOKEN }}"}
  say: {needs: [use], notify: "used ${{ steps.use.outputs.stdout }}"}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    events = await runtime.store.events_after(started.run_id)
    dumped = repr([e.data for e in events]) + repr(row.outputs)
    assert "s3cr3t-value" not in dumped
    assert row.outputs["use"]["stdout"] == "token=***"
    assert row.outputs["say"] == {"text": "used token=***"}


async def test_editing_the_file_does_not_change_a_run_in_flight(
    runtime: Runtime, workflows_dir: Path
) -> None:
    v1 = workflow(
        """
name: pinned
steps:
  ask: {approval: {title: "ok?"}}
  say: {needs: [ask], notify: "version one"}
""",
        workflows_dir,
    )
    started = await runtime.submit(v1, {}, "alice")
    await status_is(runtime, started.run_id, "waiting")
    (workflows_dir / "pinned.yaml").write_text(
        (workflows_dir / "pinned.yaml").read_text().replace("one", "two")
    )
    [request] = await runtime.approvals.pending()
    await runtime.approvals.decide(request.id, "bob", "approve", None)
    await runtime.wake(started.run_id)
    row = await finished(runtime, started.run_id)
    assert row.outputs["say"] == {"text": "version one"}
    assert row.digest == v1.digest


async def test_a_cancelled_run_closes_its_pending_approval(runtime: Runtime) -> None:
    text = """
name: gated_cancel
steps:
  ask: {approval: {title: "Go?"}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    await status_is(runtime, started.run_id, "waiting")
    [request] = await runtime.approvals.pending()
    await runtime.cancel(started.run_id, by="alice")
    assert (await finished(runtime, started.run_id)).status == "cancelled"

    async def closed() -> bool:
        return (await runtime.approvals.get(request.id)).status == "cancelled"

    await eventually(closed)
    assert await runtime.approvals.pending() == []
