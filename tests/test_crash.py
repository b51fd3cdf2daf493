"""Crash tests: a real `switchboard workflow run` process is killed with SIGKILL, then resumed.

Steps append to a log file, so the assertions count exactly which steps ran and how often.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent


def cli(db_url: str, workflows: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SWITCHBOARD_WORKFLOWS_DIR": str(workflows),
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_KILL_GRACE": "0.5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def appender(log: Path, line: str, then: str = "") -> str:
    return f'["sh", "-c", "echo {line} >> {log}{then}"]'


async def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    # a database error: the process under test has not created the tables yet
    await eventually(predicate, timeout, "the killed process's state", ignore=(sa.exc.DBAPIError,))


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def kill_then_resume(
    db_url: str, workflows: Path, name: str, kill_when, by_id: bool = False
) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    proc = cli(db_url, workflows, "workflow", "run", name)
    engine = create_engine(db_url)
    store = RunStore(engine)
    try:
        await wait_for(lambda: kill_when(store))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        [row] = await store.list_runs()
        assert row.status not in ("succeeded", "failed")
        resumed = cli(db_url, workflows, "workflow", "resume", row.id if by_id else "--all")
        out, _ = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, out
        final = await store.run_row(row.id)
        assert final is not None and final.status == "succeeded", out
        return row.id, out
    finally:
        if proc.poll() is None:
            proc.kill()
        await engine.dispose()


async def test_kill_mid_step_reruns_only_that_step(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  a: {{run: {appender(log, "a")}}}
  b: {{needs: [a], run: {appender(log, "b-start", "; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 60; echo b-end >> " + str(log))}}}
  c: {{needs: [b], run: {appender(log, "c")}}}
""")

    async def b_started(store: RunStore) -> bool:
        return "b-start" in lines(log)

    run_id, _ = await kill_then_resume(db_url, tmp_path, "w", b_started)
    assert lines(log) == ["a", "b-start", "b-start", "b-end", "c"]
    engine = create_engine(db_url)
    steps = {s.key: s.attempt for s in await RunStore(engine).step_rows(run_id)}
    await engine.dispose()
    assert steps == {"a": 1, "b": 2, "c": 1}


async def test_resuming_a_killed_run_by_id_takes_over_at_once(db_url: str, tmp_path: Path) -> None:
    # The killed process's lease has not lapsed (30 s by default): `workflow resume RUN` sees its holder is dead.
    log = tmp_path / "log"
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  a: {{run: {appender(log, "a-start", "; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 60; echo a-end >> " + str(log))}}}
  b: {{needs: [a], run: {appender(log, "b")}}}
""")

    async def a_started(store: RunStore) -> bool:
        return "a-start" in lines(log)

    _, out = await kill_then_resume(db_url, tmp_path, "w", a_started, by_id=True)
    assert "another live process" not in out
    assert lines(log) == ["a-start", "a-start", "a-end", "b"]


async def test_kill_between_steps_runs_nothing_twice(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  a: {{run: {appender(log, "a")}}}
  pause: {{needs: [a], wait: 1s}}
  c: {{needs: [pause], run: {appender(log, "c")}}}
""")

    async def waiting(store: RunStore) -> bool:
        rows = await store.list_runs()
        return bool(rows) and rows[0].status == "waiting"

    await kill_then_resume(db_url, tmp_path, "w", waiting)
    assert lines(log) == ["a", "c"]


async def test_kill_mid_wave_reruns_only_items_in_flight(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    slow = f"; [ $N -ge 3 ] && [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 60; echo end-$N >> {log}"
    (tmp_path / "w.yaml").write_text(f"""
name: w
concurrency: 6
steps:
  wave:
    for_each: "${{{{ fromJSON('[0, 1, 2, 3, 4, 5]') }}}}"
    run: {appender(log, "start-$N", slow)}
    env: {{N: "${{{{ item }}}}"}}
  after: {{needs: [wave], run: {appender(log, "after")}}}
""")

    async def quick_items_stored(store: RunStore) -> bool:
        rows = await store.list_runs()
        if not rows:
            return False
        steps = {s.key: s.status for s in await store.step_rows(rows[0].id)}
        quick_done = all(steps.get(f"wave[{i}]") == "succeeded" for i in range(3))
        return quick_done and all(f"start-{i}" in lines(log) for i in range(3, 6))

    await kill_then_resume(db_url, tmp_path, "w", quick_items_stored)
    seen = lines(log)
    for i in range(3):
        assert seen.count(f"start-{i}") == 1 and seen.count(f"end-{i}") == 1
    for i in range(3, 6):
        assert seen.count(f"start-{i}") == 2 and seen.count(f"end-{i}") == 1
    assert seen.count("after") == 1
