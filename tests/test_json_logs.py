"""``SWITCHBOARD_LOG_FORMAT=json``: a real ``switchboard run`` writes one JSON object a line, and a run's
lines carry its run_id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from bot.config import Settings
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from tests.helpers import eventually, workflow

BROKEN = """
name: broken
steps:
  boom:
    run: ["sh", "-c", "exit 3"]
"""


async def test_a_bot_process_logs_json_lines_that_name_the_run(tmp_path: Path, workflows_dir: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}"
    loaded = workflow(BROKEN, workflows_dir)
    engine = create_engine(db)
    await migrate(engine)
    # Stored unclaimed (as `workflow run --detach` does), for the bot process to pick up.
    runtime = Runtime(Settings(database_url=db, workflows_dir=workflows_dir), RunStore(engine))
    started = await runtime.submit(loaded, {}, "console:alice", drive=False)
    await engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        DATABASE_URL=db,
        SWITCHBOARD_WORKFLOWS_DIR=str(workflows_dir),
        SWITCHBOARD_PORT="0",
        SWITCHBOARD_LOG_FORMAT="json",
        SWITCHBOARD_POLL_INTERVAL="0.1",
    )
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []

    async def read() -> None:
        assert bot.stderr is not None
        async for raw in bot.stderr:
            lines.append(raw.decode().rstrip("\n"))

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: any("run_finished" in line for line in lines), 60, "the run to finish")
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 30)
        await reader
    parsed = [json.loads(line) for line in lines if line.strip()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(p) for p in parsed)
    about_run = [p for p in parsed if started.run_id in p["message"]]
    assert about_run and all(p.get("run_id") == started.run_id for p in about_run), about_run
    assert any("step_failed boom" in p["message"] for p in about_run)
