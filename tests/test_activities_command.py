"""The ``run`` kind against real processes: output, failures, limits, and stopping a process tree."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.activities import command
from engine.activities.base import ActivityContext, StepCall, StepFailure
from tests.helpers import eventually

PY = sys.executable
CTX = ActivityContext(kill_grace=0.3)

# Ignores SIGTERM, starts a grandchild that ignores it too, and reports both pids once ready.
STUBBORN = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grand = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")
subprocess.Popen([sys.executable, "-c", grand, sys.argv[1] + ".grand"])
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(60)
"""


def call(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> StepCall:
    params: dict[str, Any] = {"argv": argv, "env": env or {}, "cwd": cwd}
    return StepCall("run-9", "build", "build", 1, "run-9:build", "run", params)


def ready(*pidfiles: Path) -> Any:
    """A probe: every pid file written."""
    return lambda: all(f.exists() and f.read_text() for f in pidfiles)


def gone(pid: int) -> bool:
    """True once a process has exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_success_captures_both_streams() -> None:
    script = "import sys; print('hello'); print('careful', file=sys.stderr)"
    result = await command.execute(call([PY, "-c", script]), CTX)
    assert result["stdout"] == "hello"
    assert result["stderr"] == "careful"
    assert result["exit_code"] == 0
    assert result["truncated"] is False
    assert isinstance(result["duration"], float) and result["duration"] > 0


async def test_failure_names_the_code_and_the_last_stderr_line() -> None:
    script = (
        "import sys; print('first', file=sys.stderr); print('disk full\\n', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(StepFailure) as failure:
        await command.execute(call([PY, "-c", script]), CTX)
    assert failure.value.kind == "command"
    assert failure.value.message == "exited with code 3: disk full"
    assert failure.value.result["exit_code"] == 3
    assert failure.value.result["stderr"] == "first\ndisk full"


async def test_output_is_capped_keeping_the_tail() -> None:
    script = "import sys; sys.stdout.write('x' * 200_000 + 'END\\n'); sys.stderr.write('é' * 5000 + 'TAIL')"
    result = await command.execute(call([PY, "-c", script]), ActivityContext(output_cap=1000))
    assert result["truncated"] is True
    assert result["stdout"].endswith("xxxEND") and len(result["stdout"]) == 999
    assert result["stderr"].endswith("ééTAIL") and "\ufffd" not in result["stderr"]


async def test_env_and_cwd_reach_the_program(tmp_path: Path) -> None:
    script = (
        "import os; print(os.getcwd()); "
        "print(*[os.environ[k] for k in ('GREETING', 'SWITCHBOARD_RUN_ID', 'SWITCHBOARD_STEP', "
        "'SWITCHBOARD_ATTEMPT', 'SWITCHBOARD_IDEMPOTENCY_KEY')]); print('PATH' in os.environ)"
    )
    result = await command.execute(call([PY, "-c", script], {"GREETING": "hi"}, str(tmp_path)), CTX)
    assert result["stdout"].splitlines() == [str(tmp_path), "hi run-9 build 1 run-9:build", "True"]


async def test_program_not_found_or_not_executable(tmp_path: Path) -> None:
    with pytest.raises(StepFailure, match="program 'no-such-program-xyz' was not found on PATH"):
        await command.execute(call(["no-such-program-xyz", "--help"]), CTX)
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(StepFailure, match="is not executable"):
        await command.execute(call([str(script)]), CTX)
    with pytest.raises(StepFailure, match="working directory '/no/such/dir' does not exist"):
        await command.execute(call([PY, "-V"], cwd="/no/such/dir"), CTX)


async def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = asyncio.create_task(command.execute(call([PY, "-c", STUBBORN, str(pidfile)]), CTX))
    grand = Path(f"{pidfile}.grand")
    await eventually(ready(pidfile, grand), message="the program and its grandchild to start")
    pids = [int(pidfile.read_text()), int(grand.read_text())]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Both ignore SIGTERM, so only the SIGKILL after the grace stops them (bench/lifecycle.py times it).
    await eventually(lambda: all(gone(pid) for pid in pids), message="the whole group to be killed")


async def test_a_second_cancel_during_the_grace_period_still_stops_everything(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = asyncio.create_task(command.execute(call([PY, "-c", STUBBORN, str(pidfile)]), CTX))
    grand = Path(f"{pidfile}.grand")
    await eventually(ready(pidfile, grand), message="the program and its grandchild to start")
    pids = [int(pidfile.read_text()), int(grand.read_text())]
    before = set(command._cleanups)
    task.cancel()
    await eventually(
        lambda: set(command._cleanups) - before, message="the first cancel to start the grace period"
    )
    task.cancel()  # the runtime's timeout firing, then a user's cancel
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: all(gone(pid) for pid in pids), message="the whole group to be killed")


async def test_a_timeout_stops_a_polite_program_without_waiting_the_grace(tmp_path: Path) -> None:
    # A grace of an hour: the test ends (well before its per-test timeout) only because the polite program's
    # exit on SIGTERM ends the wait. How long the stop takes is measured in bench/lifecycle.py.
    pidfile = tmp_path / "pid"
    scopes: list[asyncio.Timeout] = []

    async def step() -> None:
        async with asyncio.timeout(None) as scope:
            scopes.append(scope)
            argv = ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 3600"]
            await command.execute(call(argv), ActivityContext(kill_grace=3600))

    task = asyncio.create_task(step())
    await eventually(
        lambda: scopes and pidfile.exists() and pidfile.read_text(), message="the program to start"
    )
    scopes[0].reschedule(asyncio.get_running_loop().time())  # the step's timeout fires now
    with pytest.raises(TimeoutError):
        await task
    assert gone(int(pidfile.read_text()))


async def test_a_background_child_holding_stdout_does_not_hang_the_step(tmp_path: Path) -> None:
    # The child sleeps an hour: the step ends (well before the per-test timeout) only if it stops waiting
    # for the child's end of stdout. How long it takes is measured in bench/lifecycle.py.
    result = await command.execute(
        call(["sh", "-c", f"sleep 3600 & echo $! > {tmp_path}/bg; echo started"]), CTX
    )
    assert result["stdout"] == "started"
    await eventually(lambda: gone(int((tmp_path / "bg").read_text())), message="the background child to stop")


async def test_no_file_descriptors_leak() -> None:
    await command.execute(call([PY, "-c", "print(1)"]), CTX)  # warm up whatever the loop opens once
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        await command.execute(call([PY, "-c", "print(1)"]), CTX)
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_a_child_that_left_the_group_cannot_hang_the_step(tmp_path: Path) -> None:
    # setsid puts the sleep out of reach of the group signals; the step must still end.
    script = f"setsid sleep 30 & echo $! > {tmp_path}/bg; echo started"
    try:
        result = await command.execute(call(["sh", "-c", script]), CTX)
        assert result["stdout"] == "started"
    finally:
        os.kill(int((tmp_path / "bg").read_text()), 9)
