"""Lifecycle timings: how long stopping things takes. The tests check that they stop; this prints how fast.

    python bench/lifecycle.py            # everything, 3 rounds each
    python bench/lifecycle.py cancel stop --rounds 5

Each figure is printed with the load average beside it, since these are wall-clock times of real processes
(a loaded machine stretches them; the tests no longer assert them).

  cancel   `switchboard workflow cancel RUN` from another process -> the `workflow run` process has exited
           (was asserted < 10 s in tests/test_cli.py)
  stop     SIGTERM to `switchboard run` -> the process has exited with code 0 (was asserted < 5 s)
  grace    cancelling a `run` step whose program ignores SIGTERM -> the step has stopped
           (kill_grace 0.3 s; was asserted between 0.3 and 2.3 s in tests/test_activities_command.py)
  polite   a step timeout on a program that exits on SIGTERM, with a 10 s grace -> stopped (was < 3 s)
  orphan   a step whose background child keeps stdout open -> the step's result (was < 4 s)

The acknowledgement latencies of chat clicks and commands (Slack's and Discord's 3 s) are in
bench/chat.py (`ack`) and bench/approvals.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.activities import command  # noqa: E402
from engine.activities.base import ActivityContext, StepCall  # noqa: E402

SLEEPY = """
name: sleepy
steps:
  nap: {run: ["sleep", "30"]}
  after: {needs: [nap], run: ["true"]}
"""
STUBBORN = r"""
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write("ready")
time.sleep(60)
"""


def environment(folder: Path, **extra: str) -> dict[str, str]:
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_"))
    }
    return {
        **inherited,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        "SWITCHBOARD_WORKFLOWS_DIR": str(folder),
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_KILL_GRACE": "0.5",
        **extra,
    }


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def call(argv: list[str]) -> StepCall:
    return StepCall("run-b", "step", "step", 1, "run-b:step", "run", {"argv": argv, "env": {}, "cwd": None})


async def cancel_figure() -> float:
    import sqlalchemy as sa

    from bot.storage.database import create_engine
    from bot.storage.tables import step_runs as steps

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sleepy.yaml").write_text(SLEEPY)
        env = environment(folder)
        runner = cli(env, "workflow", "run", "sleepy")
        engine = create_engine(env["DATABASE_URL"])
        try:
            run_id = None
            while run_id is None:
                await asyncio.sleep(0.05)
                try:
                    async with engine.connect() as conn:
                        query = sa.select(steps.c.run_id).where(
                            steps.c.key == "nap", steps.c.status == "running"
                        )
                        run_id = (await conn.execute(query)).scalar()
                except sa.exc.DBAPIError:
                    pass  # no tables yet
            started = time.monotonic()
            canceller = cli(env, "workflow", "cancel", run_id, "--as", "bench")
            await asyncio.to_thread(runner.wait, 60)
            took = time.monotonic() - started
            await asyncio.to_thread(canceller.wait, 60)
            return took
        finally:
            await engine.dispose()
            if runner.poll() is None:
                runner.kill()


async def stop_figure() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp), SWITCHBOARD_PORT="0")
        bot = cli(env, "run")
        assert bot.stdout is not None
        for line in bot.stdout:
            if "Switchboard is running" in line:
                break
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(bot.wait, 60)
        assert code == 0
        return time.monotonic() - started


async def grace_figure() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        task = asyncio.create_task(
            command.execute(
                call([sys.executable, "-c", STUBBORN, str(ready)]), ActivityContext(kill_grace=0.3)
            )
        )
        while not ready.exists():
            await asyncio.sleep(0.01)
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - started


async def polite_figure() -> float:
    started = time.monotonic()
    try:
        async with asyncio.timeout(0.2):
            await command.execute(call(["sleep", "30"]), ActivityContext(kill_grace=10))
    except TimeoutError:
        pass
    return time.monotonic() - started


async def orphan_figure() -> float:
    started = time.monotonic()
    await command.execute(call(["sh", "-c", "sleep 30 & echo started"]), ActivityContext(kill_grace=0.3))
    return time.monotonic() - started


FIGURES: dict[str, Callable[[], Awaitable[float]]] = {
    "cancel": cancel_figure,
    "stop": stop_figure,
    "grace": grace_figure,
    "polite": polite_figure,
    "orphan": orphan_figure,
}


async def main_async(names: list[str], rounds: int) -> None:
    for name in names:
        seconds = [await FIGURES[name]() for _ in range(rounds)]
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"{name:7s} median {statistics.median(seconds):6.2f} s  max {max(seconds):6.2f} s"
            f"  ({rounds} rounds; load average {load})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", metavar="FIGURE", help=", ".join(FIGURES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.figures or list(FIGURES), args.rounds))


if __name__ == "__main__":
    main()
