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
