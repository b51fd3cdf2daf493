"""``switchboard runners list``: the remote runners heard from, and the jobs waiting, running and lost."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from bot.cli.wiring import open_database
from bot.config import Settings
from bot.storage.runner_jobs import LEASED, RunnerJobs
from bot.storage.runner_registry import RunnerRegistry, RunnerRow

RECENT = 3600.0  # seconds: runners not heard from in this long are listed with --all only


async def list_runners(settings: Settings, args: argparse.Namespace) -> int:
    """``runners list``: one line a runner, newest first."""
    now = time.time()
    async with open_database(settings) as engine:
        rows = await RunnerRegistry(engine).list(0.0 if args.all else now - RECENT)
        counts = await RunnerJobs(engine).counts()
    alive = now - settings.runner_lease
    if args.json:
        listed = [{**r.to_dict(), "connected": r.last_seen >= alive} for r in rows]
        print(json.dumps({"runners": listed, "jobs": counts}, indent=2))
        return 0
    if not rows:
        print(
            "no runners heard from in the last hour; start one with `switchboard runner --url URL "
            "--token TOKEN --labels LABEL`"
        )
    else:
        print(f"{'NAME':<20} {'LABELS':<24} {'VERSION':<10} {'STATE':<14} LAST SEEN")
        for r in rows:
            labels, state = ",".join(r.labels), r.state(alive)
            print(f"{r.name:<20} {labels:<24} {r.version:<10} {state:<14} {_when(r, now)}")
    print(
        f"jobs: {counts.get('queued', 0)} waiting, {counts.get(LEASED, 0)} running, "
        f"{counts.get('lost', 0)} lost"
    )
    return 0


def _when(r: RunnerRow, now: float) -> str:
    ago = max(0.0, now - r.last_seen)
    stamp = datetime.fromtimestamp(r.last_seen, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} ({ago:.0f}s ago)"
