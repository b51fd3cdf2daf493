"""Step programs die with the bot: a real bot process is killed with SIGKILL while a step's program runs.

The step's program starts a helper that would finish its work (an ``end`` line) after the program itself
is gone, the way a deploy script's child keeps going. Each attempt writes ``start`` first and, before
that, notes whether anything of an earlier attempt still runs; so the log shows any overlap as it
happened, with no sleeping in the test.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import sqlalchemy as sa

from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from bot.storage.tables import step_processes
from engine.activities.processes import boot_id, start_ticks
from tests.helpers import eventually
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
            async with engine.connect() as conn:
                return (await conn.execute(sa.select(step_processes))).first()

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
