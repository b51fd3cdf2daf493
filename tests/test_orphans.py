"""Step programs die with the bot: a real bot process is killed with SIGKILL while a step's program runs.

The step's program starts a helper that would finish its work (an ``end`` line) after the program itself
is gone, the way a deploy script's child keeps going. Each attempt writes ``start`` first and, before
that, notes whether anything of an earlier attempt still runs; so the log shows any overlap as it
happened, with no sleeping in the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.runtime.run_views import view_from_store
from bot.runtime.runtime import Runtime
from bot.runtime.status_cards import thread_reply
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from bot.storage.tables import step_processes
from engine.activities.processes import Orphan, boot_id, kill_orphan, start_ticks
from engine.loader import WorkflowInvalid
from tests.helpers import eventually, finished, status_is, workflow
from tests.test_crash import cli, lines

STEP = """
import os, subprocess, sys, time
from pathlib import Path

log, pids = Path(sys.argv[1]), Path(sys.argv[1] + ".pids")
attempt = os.environ["SWITCHBOARD_ATTEMPT"]
earlier = pids.read_text().split() if pids.exists() else []
for pid in earlier:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        continue
    if state not in ("Z", "X"):
        with log.open("a") as f:
            f.write(f"overlap-{pid}\\n")
with log.open("a") as f:
    f.write(f"start-{attempt}\\n")
if attempt == "1":
    finish = f"import time; time.sleep(60); open({str(log)!r}, 'a').write('end-1\\\\n')"
    helper = subprocess.Popen([sys.executable, "-c", finish])
    pids.write_text(f"{os.getpid()} {helper.pid}")
    time.sleep(60)
with log.open("a") as f:
    f.write(f"end-{attempt}\\n")
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _workflow(tmp_path: Path, log: Path, extra: str = "") -> None:
    script = tmp_path / "step.py"
    script.write_text(STEP)
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  deploy:
    run: ["{sys.executable}", "{script}", "{log}"]{extra}
  after: {{needs: [deploy], run: ["true"]}}
""")


async def test_a_killed_bots_command_is_gone_before_its_step_runs_again(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    _workflow(tmp_path, log)
    bot = cli(db_url, tmp_path, "workflow", "run", "w")
    engine = create_engine(db_url)
    store = RunStore(engine)
    pids: list[int] = []
    try:
        pid_file = Path(f"{log}.pids")
        await eventually(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 30)
        program, helper = pids[:] = [int(p) for p in pid_file.read_text().split()]

        async def recorded() -> object:
            # The row is written as the step starts; its pid and group follow once the program runs.
            async with engine.connect() as conn:
                row = (await conn.execute(sa.select(step_processes))).first()
            return row if row is not None and row.pid is not None else None

        row = await eventually(recorded, 10, "the program's row", ignore=(sa.exc.DBAPIError,))
        assert (row.step, row.attempt, row.pid, row.pgid) == ("deploy", 1, program, program)
        assert row.boot_id == boot_id() and row.start_ticks == start_ticks(program)

        bot.send_signal(signal.SIGKILL)
        bot.wait(timeout=10)
        # The parent-death signal takes the program with the bot; its helper, in the same group, lives on.
        await eventually(lambda: not _alive(program), 10, "the program to die with the bot")
        assert _alive(helper)

        resumed = cli(db_url, tmp_path, "workflow", "resume", "--all")
        out, _ = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, out
        assert not _alive(helper)
        # No overlap: when attempt 2 began, nothing of attempt 1 ran; attempt 1's end never came.
        assert lines(log) == ["start-1", "start-2", "end-2"]
        [run] = await store.list_runs()
        assert run.status == "succeeded"
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(step_processes))).first() is None  # ends delete the rows
    finally:
        if bot.poll() is None:
            bot.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await engine.dispose()


DEPLOY = """
name: w
steps:
  deploy:
    run: ["sh", "-c", "[ $SWITCHBOARD_ATTEMPT = 1 ] && exec sleep 60; echo ran-again >> {log}"]
    on_interrupt: {policy}
"""


async def _interrupted_elsewhere(settings: Settings, workflows_dir: Path, policy: str) -> tuple[str, Path]:
    """A run whose 'deploy' was running on another host when that host's bot died (as its row says)."""
    log = workflows_dir / "log"
    loaded = workflow(DEPLOY.format(log=log, policy=policy), workflows_dir)
    engine = create_engine(settings.database_url)
    await migrate(engine)
    first = Runtime(settings, RunStore(engine))
    await first.start()
    try:
        run_id = (await first.submit(loaded, {}, "console:alice")).run_id

        async def program_recorded() -> object:
            async with engine.connect() as conn:
                return (await conn.execute(sa.select(step_processes.c.pid))).scalar()

        await eventually(program_recorded, 10, "the program's pid")
    finally:
        await first.stop(grace=0)  # the step stays running in storage, as after a crash
        async with engine.begin() as conn:
            await conn.execute(step_processes.update().values(boot_id="another-boot", host="build-7"))
        await engine.dispose()
    return run_id, log


async def test_on_interrupt_fail_fails_a_step_interrupted_on_another_host(
    settings_for: Callable[..., Settings], workflows_dir: Path, make_runtime: Callable[..., Any]
) -> None:
    run_id, log = await _interrupted_elsewhere(settings_for(), workflows_dir, "fail")
    rt = await make_runtime()
    row = await finished(rt, run_id)
    assert row.status == "failed"
    assert "deploy' failed: was interrupted by a crash on build-7" in row.error
    assert "not run again (on_interrupt: fail)" in row.error
    assert not log.exists()  # it did not run again
    [step] = await rt.store.step_rows(run_id)
    assert (step.attempt, step.error_kind) == (1, "interrupted")


async def test_on_interrupt_ask_runs_the_step_again_when_approved(
    settings_for: Callable[..., Settings], workflows_dir: Path, make_runtime: Callable[..., Any]
) -> None:
    run_id, log = await _interrupted_elsewhere(settings_for(), workflows_dir, "ask")
    rt = await make_runtime()
    [ask] = await eventually(rt.approvals.pending, 10, "the question")
    assert ask.run_id == run_id and ask.step_key == "deploy"
    assert re.fullmatch(
        r"deploy was interrupted by a crash \(it started at \d\d:\d\d UTC\); run it again\?", ask.title
    )
    assert ask.context["Host"] == "build-7"
    await status_is(rt, run_id, "waiting")
    view = await view_from_store(rt.store, run_id)
    assert view is not None and view.waiting_for == "an answer: run deploy again after a crash?"
    assert not log.exists()
    await rt.decide(ask.id, "console:alice", "approve")  # the run's own starter may answer
    row = await finished(rt, run_id)
    assert row.status == "succeeded"
    assert lines(log) == ["ran-again"]
    interrupted = [e.data for e in await rt.store.events_after(run_id, 0) if e.type == "step_interrupted"]
    assert [d["action"] for d in interrupted] == ["ask"]


async def test_on_interrupt_ask_fails_the_step_when_rejected(
    settings_for: Callable[..., Settings], workflows_dir: Path, make_runtime: Callable[..., Any]
) -> None:
    run_id, log = await _interrupted_elsewhere(settings_for(), workflows_dir, "ask")
    rt = await make_runtime()
    [ask] = await eventually(rt.approvals.pending, 10, "the question")
    await rt.decide(ask.id, "console:bob", "reject", comment="it finished; I checked")
    row = await finished(rt, run_id)
    assert row.status == "failed"
    assert "interrupted by a crash and not run again: it finished; I checked" in row.error
    assert not log.exists()


async def test_rerun_is_the_default_on_another_host(
    settings_for: Callable[..., Settings], workflows_dir: Path, make_runtime: Callable[..., Any]
) -> None:
    run_id, log = await _interrupted_elsewhere(settings_for(), workflows_dir, "rerun")
    rt = await make_runtime()
    row = await finished(rt, run_id)
    assert row.status == "succeeded" and lines(log) == ["ran-again"]


def test_the_status_card_thread_says_what_happened() -> None:
    ran_again = {"type": "step_interrupted", "step_key": "deploy", "data": {"attempt": 1, "action": "rerun"}}
    card = thread_reply(ran_again)
    assert card is not None
    assert card.text == "⚡ *deploy* was interrupted by a crash; running it again (attempt 2)"
    failed = {
        "type": "step_interrupted",
        "step_key": "deploy",
        "data": {"attempt": 1, "action": "fail", "host": "build-7", "started": "14:02 UTC"},
    }
    card = thread_reply(failed)
    assert card is not None and card.colour == "danger"
    assert card.text == (
        "⚡ *deploy* was interrupted by a crash on build-7 (it started at 14:02 UTC); "
        "not run again (on_interrupt: fail)"
    )


def test_on_interrupt_is_for_run_steps_only() -> None:
    with pytest.raises(WorkflowInvalid, match="'on_interrupt' applies to 'run' steps, and to steps with 'runs_on'"):
        workflow("name: w\nsteps:\n  pause: {wait: 1s, on_interrupt: fail}\n")


async def test_a_reused_pid_is_never_killed() -> None:
    # A process that happens to hold a recorded pid, but started at another time, is someone else's.
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ticks = start_ticks(stranger.pid)
        assert ticks is not None
        recorded = Orphan("r1", "deploy", 1, stranger.pid, stranger.pid, ticks - 1)
        assert await kill_orphan(recorded, timeout=5)  # nothing of the orphan's is left
        assert stranger.poll() is None
        ours = Orphan("r1", "deploy", 1, stranger.pid, stranger.pid, ticks)
        assert await kill_orphan(ours, timeout=5)
        assert stranger.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()
