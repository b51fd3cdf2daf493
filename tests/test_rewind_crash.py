"""A `switchboard workflow rewind` process killed with SIGKILL while it compensates, then resumed.

Steps append to a log file, so the assertions count exactly what ran and how often: nothing that
finished runs twice, a compensation that finished is not run again, and the run carries on to success.
"""

from __future__ import annotations

import signal
from pathlib import Path

from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from tests.test_crash import appender, cli, lines, wait_for


async def test_kill_during_a_rewind_resumes_it_once(db_url: str, tmp_path: Path) -> None:
    log, gate, slow = tmp_path / "log", tmp_path / "gate", tmp_path / "slow-once"
    undo_b = f"; [ -e {slow} ] || {{ touch {slow}; sleep 60; }}; echo undo-b-end >> {log}"
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  a: {{run: {appender(log, "a")}, checkpoint: true}}
  b: {{needs: [a], run: {appender(log, "b")}, compensate: {{run: {appender(log, "undo-b-start", undo_b)}}}}}
  c: {{needs: [b], run: {appender(log, "c")}, compensate: {{run: {appender(log, "undo-c")}}}}}
  d: {{needs: [c], run: ["test", "-e", "{gate}"]}}
""")
    first = cli(db_url, tmp_path, "workflow", "run", "w")
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 1, out
    engine = create_engine(db_url)
    store = RunStore(engine)
    rewind = None
    try:
        [row] = await store.list_runs()
        assert row.status == "failed"
        rewind = cli(db_url, tmp_path, "workflow", "rewind", row.id, "--to", "a")

        async def compensating_b(_: RunStore | None = None) -> bool:
            return "undo-b-start" in lines(log)

        await wait_for(compensating_b)
        rewind.send_signal(signal.SIGKILL)
        rewind.wait(timeout=10)
        killed = await store.run_row(row.id)
        assert killed is not None and killed.status == "compensating" and killed.rewind_to == "a"

        gate.write_text("open")
        resumed = cli(db_url, tmp_path, "workflow", "resume", "--all")
        out, _ = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, out
        final = await store.run_row(row.id)
        assert final is not None and final.status == "succeeded", out
        # undo-c had finished before the kill: it is not run again. undo-b was in flight: its leftover
        # program is killed and it runs again (at least once, as a step does), then b and c run anew.
        assert lines(log) == ["a", "b", "c", "undo-c", "undo-b-start", "undo-b-start", "undo-b-end", "b", "c"]
        steps = {s.key: s for s in await store.step_rows(row.id)}
        assert {k: s.attempt for k, s in steps.items()} == {"a": 1, "b": 2, "c": 2, "d": 2}
        assert all(s.compensation is None for s in steps.values())
    finally:
        if rewind is not None and rewind.poll() is None:
            rewind.kill()
        await engine.dispose()


async def test_kill_during_a_rerun_never_runs_the_reused_steps(db_url: str, tmp_path: Path) -> None:
    log, gate, slow = tmp_path / "log", tmp_path / "gate", tmp_path / "slow-once"
    b_then = (
        f"; test -e {gate} || exit 1; [ -e {slow} ] || {{ touch {slow}; sleep 60; }}; echo b-end >> {log}"
    )
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  a: {{run: {appender(log, "a")}, outputs: {{n: "42"}}}}
  b: {{needs: [a], run: {appender(log, "b-start", b_then)}}}
  c: {{needs: [b], run: {appender(log, "c-${{ steps.a.outputs.n }}")}}}
""")
    first = cli(db_url, tmp_path, "workflow", "run", "w")
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 1, out  # b fails while the gate is shut
    engine = create_engine(db_url)
    store = RunStore(engine)
    rerun = None
    try:
        [old] = await store.list_runs()
        gate.write_text("open")
        rerun = cli(db_url, tmp_path, "workflow", "rerun", old.id, "--from", "b")

        async def b_running(_: RunStore | None = None) -> bool:
            # b's second attempt is in its sleep (it made the flag first), so the kill lands mid-step
            return lines(log).count("b-start") == 2 and slow.exists()

        await wait_for(b_running)
        rerun.send_signal(signal.SIGKILL)
        rerun.wait(timeout=10)
        new = next(r for r in await store.list_runs() if r.id != old.id)
        assert new.meta["rerun_of"] == old.id and new.status == "running"

        resumed = cli(db_url, tmp_path, "workflow", "resume", "--all")
        out, _ = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, out
        final = await store.run_row(new.id)
        assert final is not None and final.status == "succeeded", out
        # a ran once, in the old run; the rerun took its outputs over, before and after the kill.
        assert lines(log) == ["a", "b-start", "b-start", "b-start", "b-end", "c-42"]
        steps = {s.key: s for s in await store.step_rows(new.id)}
        assert steps["a"].compensation == "reused" and steps["a"].attempt == 1
        assert steps["b"].attempt == 2 and steps["c"].attempt == 1
    finally:
        if rerun is not None and rerun.poll() is None:
            rerun.kill()
        await engine.dispose()
