"""Timer lateness in a burst: 300 runs started at once, each with two waits, on PostgreSQL, with 1 and 2
worker processes sharing the database.

    python bench/timers.py                  # 300 runs, 1 then 2 processes
    python bench/timers.py --runs 100 --processes 2

One process (the first worker) starts every run in a burst; every worker's alarm fires the timers it
claims. For each timer it prints how late it fired (fired_at - due_at) and how late its run applied it
(the inbox row's consumed_at - due_at), p50, p99 and max, the duplicates (a timer posted to its run more
than once: must be 0), and the load average beside them, since a loaded machine stretches every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.runtime.runtime import Runtime  # noqa: E402
from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from bot.storage.tables import inbox, runs, timers  # noqa: E402
from engine.loader import load_text  # noqa: E402

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BURST = """
name: burst
steps:
  first: {wait: 3s}
  second: {needs: [first], wait: 1s}
  done: {needs: [second], notify: done}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def worker(url: str, work: Path, submit: int) -> None:
    """A bot process without chat: a runtime that drives runs and fires timers until SIGTERM."""
    settings = Settings(database_url=url, workflows_dir=work, log_level="WARNING", console=False)
    engine = create_engine(url)
    runtime = Runtime(settings, RunStore(engine))
    await runtime.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if submit:
        loaded = load_text(BURST, "burst.yaml")
        await asyncio.gather(*(runtime.submit(loaded, {}, started_by="bench") for _ in range(submit)))
    await stop.wait()
    await runtime.stop(grace=1.0)
    await engine.dispose()


async def fresh_schema() -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    base = PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
    return schema, f"{base}?schema={schema}"


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


async def burst(total: int, processes: int) -> str:
    schema, url = await fresh_schema()
    engine = create_engine(url)
    work = Path(tempfile.mkdtemp(prefix="sb-timers-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await migrate(engine)
        for n in range(processes):
            argv = [sys.executable, __file__, "_worker", url, str(work), str(total if n == 0 else 0)]
            procs.append(subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}))
        done = runs.c.status == "succeeded"
        async with asyncio.timeout(600):
            while True:
                async with engine.connect() as conn:
                    count = (
                        await conn.execute(sa.select(sa.func.count()).select_from(runs).where(done))
                    ).scalar_one()
                if count >= total:
                    break
                await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            fired = (await conn.execute(sa.select(timers.c.due_at, timers.c.fired_at))).all()
            mail = (
                await conn.execute(
                    sa.select(inbox.c.run_id, inbox.c.payload, inbox.c.consumed_at).where(
                        inbox.c.kind == "timer"
                    )
                )
            ).all()
        due = {}
        async with engine.connect() as conn:
            for r in (
                await conn.execute(sa.select(timers.c.run_id, timers.c.step_key, timers.c.due_at))
            ).all():
                due[(r.run_id, r.step_key)] = r.due_at
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await engine.dispose()
        await drop_schema(schema)
    late = [f.fired_at - f.due_at for f in fired if f.fired_at is not None]
    seen: dict[tuple[str, str], int] = {}
    applied = []
    for m in mail:
        key = (m.run_id, m.payload["key"])
        seen[key] = seen.get(key, 0) + 1
        if m.consumed_at is not None and key in due:
            applied.append(m.consumed_at - due[key])
    dupes = sum(n - 1 for n in seen.values())
    return (
        f"{total} runs, {processes} process(es): {len(late)} timers fired late by "
        f"p50 {pct(late, 0.5):.3f} s, p99 {pct(late, 0.99):.3f} s, max {max(late):.3f} s; "
        f"applied by their runs p50 {pct(applied, 0.5):.3f} s, p99 {pct(applied, 0.99):.3f} s; "
        f"duplicates {dupes}; {load()}"
    )


def main() -> None:
    if sys.argv[1:2] == ["_worker"]:
        url, work, submit = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        asyncio.run(worker(url, work, submit))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--processes", type=int, action="append")
    args = parser.parse_args()
    for processes in args.processes or [1, 2]:
        started = time.monotonic()
        line = asyncio.run(burst(args.runs, processes))
        print(f"{line} ({time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
