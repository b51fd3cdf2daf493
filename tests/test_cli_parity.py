"""What chat can do, the CLI can too: a run's events in JSON, a form approval's fields, and Retry.

Each through the real ``switchboard`` entry point, a process per command, on both databases.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.approvals.store import ApprovalStore
from tests.test_cli import cli, environment, finish, migrated, run_id, start, wait_for

FORM = """\
name: window
steps:
  ask:
    approval:
      title: Pick a maintenance window
      kind: form
      approvers: ["user:alice"]
      form:
        window: {type: string, required: true, description: When to run it}
        replicas: {type: integer, default: 2}
  after:
    needs: [ask]
    run: ["python3", "-c", "import sys; print('window', sys.argv[1], sys.argv[2])",
          "${{ steps.ask.outputs.form.window }}", "${{ steps.ask.outputs.form.replicas }}"]
"""
# Fails until the marker file exists: the test creates it, then retries.
FLAKY = """\
name: flaky
permissions:
  run: ["user:ops-lead"]
steps:
  check: {run: ["test", "-e", "@MARKER@"]}
  after: {needs: [check], run: ["python3", "-c", "print('after ran')"]}
"""


async def test_status_json_has_the_events(db_url: str, workflows_dir: Path) -> None:
    (workflows_dir / "flaky.yaml").write_text(FLAKY.replace("@MARKER@", "/"))  # "/" exists: it passes
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    try:
        ran = await cli(env, "workflow", "run", "flaky", "--as", "dana")
        assert ran.code == 0, ran.out
        rid = run_id(ran.out)
        with_events, without = await finish(
            start(env, "workflow", "status", rid, "--events", "--json"),
            start(env, "workflow", "status", rid, "--json"),
        )
        assert with_events.code == 0, with_events.out
        shown = json.loads(with_events.out)
        types = [e["type"] for e in shown["events"]]
        assert types[-1] == "run_finished" and "step_succeeded" in types, types
        assert [e["seq"] for e in shown["events"]] == sorted(e["seq"] for e in shown["events"])
        assert shown["run"]["status"] == "succeeded"
        assert "events" not in json.loads(without.out)
    finally:
        await store.engine.dispose()


async def test_a_form_approval_needs_its_fields(db_url: str, workflows_dir: Path) -> None:
    (workflows_dir / "window.yaml").write_text(FORM)
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    runner = start(env, "workflow", "run", "window", "--as", "dana")
    try:
        approvals = ApprovalStore(store.engine, time.time)

        async def asked() -> bool:
            return len(await approvals.pending()) == 1

        await wait_for(asked)
        [request] = await approvals.pending()
        missing, bad, unknown = await finish(
            start(env, "approvals", "decide", request.id, "approve", "--as", "alice"),
            start(
                env, "approvals", "decide", request.id, "approve", "--as", "alice", "--field", "replicas=many"
            ),
            start(
                env, "approvals", "decide", request.id, "approve", "--as", "alice", "--field", "colour=red"
            ),
        )
        for refused in (missing, bad, unknown):
            assert refused.code == 2, refused.out
        assert "window: Required." in missing.out and "--field NAME=VALUE" in missing.out, missing.out
        assert "fields: window (required), replicas" in missing.out, missing.out
        assert "replicas: Expected a integer, got 'many'" in bad.out, bad.out
        assert "has no field colour" in unknown.out, unknown.out
        assert len(await approvals.pending()) == 1  # nothing was decided

        good = await cli(
            env, "approvals", "decide", request.id, "approve", "--as", "alice", "--field", "window=Sat 02:00"
        )
        assert good.code == 0, good.out
        assert "Approved by @alice; the run continues" in good.out
        [done] = await finish(runner)
        assert done.code == 0, done.out
        [ev] = [e for e in await store.events_after(run_id(done.out)) if e.type == "step_succeeded"][-1:]
        assert ev.step_key == "after"
        row = await store.run_row(run_id(done.out))
        assert row is not None and row.status == "succeeded"
        steps = {s.key: s for s in await store.step_rows(row.id)}
        assert steps["ask"].outputs["form"] == {"window": "Sat 02:00", "replicas": 2}
        assert "window Sat 02:00 2" in steps["after"].outputs["stdout"]
    finally:
        runner.kill()
        await store.engine.dispose()


async def test_retry_a_failed_run_with_the_buttons_rule(
    db_url: str, workflows_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    (workflows_dir / "flaky.yaml").write_text(FLAKY.replace("@MARKER@", str(marker)))
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    try:
        failed = await cli(env, "workflow", "run", "flaky", "--as", "dana")
        assert failed.code == 1, failed.out
        rid = run_id(failed.out)
        outsider = await cli(env, "workflow", "retry", rid, "--as", "erin")
        assert outsider.code == 1, outsider.out
        assert "You may not run runs of flaky. Allowed: its starter, admins, user:ops-lead" in outsider.out

        marker.write_text("")
        retried, again = await finish(
            start(env, "workflow", "retry", rid, "--as", "ops-lead"),
            start(env, "workflow", "retry", "nonexistent", "--as", "dana"),
        )
        assert retried.code == 0, retried.out
        assert f"retrying the failed steps of run {rid}" in retried.out and "after ran" in retried.out
        row = await store.run_row(rid)
        assert row is not None and row.status == "succeeded"
        assert again.code != 0 and "error:" in again.out, again.out

        done = await cli(env, "workflow", "retry", rid, "--as", "dana")
        assert done.code == 1 and f"run {rid} is succeeded; only a failed run can be retried" in done.out
    finally:
        await store.engine.dispose()
