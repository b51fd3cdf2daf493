"""Checkpoints, rewind and rerun on the real runtime and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.runtime.run_views import view_from_store
from bot.runtime.runtime import Runtime
from tests.helpers import event_types, eventually, finished, workflow


def chain(log: Path, gate: Path) -> str:
    """build (checkpoint) -> deploy -> verify, which fails while ``gate`` is missing."""

    def echo(name: str) -> str:
        return f'["sh", "-c", "echo {name} >> {log}"]'

    check = f'["sh", "-c", "echo verify >> {log}; test -e {gate}"]'
    return f"""
name: chain
steps:
  build:
    run: ["sh", "-c", "echo build >> {log}; printf v1"]
    outputs: {{version: "${{{{ result.stdout }}}}"}}
    checkpoint: built
  deploy:
    needs: [build]
    run: {echo("deploy")}
    compensate: {{run: {echo("undeploy")}}}
  verify:
    needs: [deploy]
    run: {check}
    compensate: {{run: {echo("unverify")}}}
  report:
    needs: [verify]
    run: ["sh", "-c", "echo report ${{{{ steps.build.outputs.version }}}} >> {log}"]
"""


async def test_rewind_undoes_then_continues_to_success_and_twice(runtime: Runtime, tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    started = await runtime.submit(workflow(chain(log, gate)), {}, "alice")
    assert (await finished(runtime, started.run_id)).status == "failed"
    assert log.read_text().split() == ["build", "deploy", "verify"]

    # The first rewind fails again (the gate is still shut): the run is failed, not rewound for good.
    log.write_text("")
    await runtime.rewind(started.run_id, by="alice", to="built")
    await eventually(lambda: _count(runtime, started.run_id, "run_rewound", 1))
    row = await finished(runtime, started.run_id)
    assert row.status == "failed"
    assert log.read_text().split() == ["undeploy", "deploy", "verify"]  # verify failed: nothing to undo

    # The second goes on to success, from the checkpoint's state: build's output is the one it made.
    log.write_text("")
    gate.write_text("open")
    await runtime.rewind(started.run_id, by="alice", to="built")
    await eventually(lambda: _count(runtime, started.run_id, "run_rewound", 2))
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded", row.error
    assert log.read_text().split() == ["undeploy", "deploy", "verify", "report", "v1"]
    types = await event_types(runtime, started.run_id)
    assert types.count(("step_started", "build")) == 1  # never again after the first time
    assert types.count(("checkpoint_saved", "build")) == 1
    steps = {s.key: s for s in await runtime.store.step_rows(started.run_id)}
    assert steps["deploy"].attempt == 3 and steps["deploy"].compensation is None


async def test_a_rewound_run_shows_its_undone_steps(runtime: Runtime, tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    started = await runtime.submit(workflow(chain(log, gate)), {}, "alice")
    assert (await finished(runtime, started.run_id)).status == "failed"
    # A rollback marks what it undid, too; then a rewind goes back past it and carries on.
    await runtime.rollback(started.run_id, by="alice", to="build")
    await eventually(lambda: _status(runtime, started.run_id, "compensated"))
    view = await view_from_store(runtime.store, started.run_id)
    assert view is not None
    assert {s.key: s.mark for s in view.steps}["deploy"] == "compensated"  # shown ↺ undone


async def test_rerun_from_a_step_reuses_what_came_before(runtime: Runtime, tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    started = await runtime.submit(workflow(chain(log, gate)), {}, "alice")
    assert (await finished(runtime, started.run_id)).status == "failed"
    log.write_text("")
    gate.write_text("open")
    row = await runtime.store.run_row(started.run_id)
    assert row is not None
    again = await runtime.rerun(row, "verify", "bob")
    new = await finished(runtime, again.run_id)
    assert new.status == "succeeded", new.error
    assert new.meta["rerun_of"] == started.run_id and new.meta["rerun_from"] == "verify"
    assert log.read_text().split() == ["verify", "report", "v1"]  # build and deploy did not run again
    types = await event_types(runtime, again.run_id)
    assert ("step_reused", "build") in types and ("step_reused", "deploy") in types
    assert ("step_started", "build") not in types and ("step_started", "deploy") not in types
    steps = {s.key: s for s in await runtime.store.step_rows(again.run_id)}
    assert steps["build"].outputs == {"version": "v1"} and steps["build"].compensation == "reused"
    view = await view_from_store(runtime.store, again.run_id)
    assert view is not None and view.rerun_of == (started.run_id, "verify")


async def _count(runtime: Runtime, run_id: str, kind: str, n: int) -> bool:
    return [t for t, _ in await event_types(runtime, run_id)].count(kind) >= n


async def _status(runtime: Runtime, run_id: str, status: str) -> bool:
    row = await runtime.store.run_row(run_id)
    return row is not None and row.status == status


async def test_an_undone_approval_asks_again(runtime: Runtime, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    text = f"""
name: gated
steps:
  build: {{run: ["true"], checkpoint: true}}
  ship: {{needs: [build], approval: {{title: "Ship it?", approvers: ["user:carol"]}}}}
  verify: {{needs: [ship], run: ["test", "-e", "{gate}"]}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")

    async def approve() -> None:
        async def asked() -> list[Any]:
            return [a for a in await runtime.approvals.pending() if a.run_id == started.run_id]

        [request] = await eventually(asked)
        await runtime.decide(request.id, "user:carol", "approve")

    await approve()
    assert (await finished(runtime, started.run_id)).status == "failed"
    gate.write_text("open")
    await runtime.rewind(started.run_id, by="alice", to="build")
    await approve()  # asked again: the approval was undone with what came after the checkpoint
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded", row.error
