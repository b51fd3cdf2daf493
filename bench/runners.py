"""Remote runners on localhost: dispatch overhead per step, throughput with 1, 2 and 4 runners, re-dispatch.

    python bench/runners.py                    # 40 runs per runner count, lease 4 s
    python bench/runners.py --runs 100 --lease 3
    python bench/runners.py --dispatch-only --steps 40   # the one-step-at-a-time figures only

A real `switchboard run` server on a fresh PostgreSQL schema and real `switchboard runner` processes
(concurrency 4 each). Every run has one no-op step (`true`) with `runs_on: [bench]`. From the job rows:
- dispatch: job queued (the step's start is committed) → leased to a runner, one step at a time;
- overhead: job queued → result stored, less the program's own run time, one step at a time;
- throughput: steps per second from the first run started to the last one finished;
- re-dispatch: a runner holding a job is killed with -9; time from the kill to the job's next attempt
  being leased to the other runner (bounded by the lease, which the kill lets lapse).
The load average is printed beside the figures: a loaded machine stretches every one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.tables import runner_jobs, runs  # noqa: E402
from bot.storage.tokens import TokenStore  # noqa: E402
from bot.tokens import acting_as, parse_scopes  # noqa: E402

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
NOOP = 'name: noop\nsteps:\n  go: {runs_on: [bench], run: ["true"]}\n'
SLOW = 'name: slow\nsteps:\n  go: {runs_on: [bench], run: ["sh", "-c", "[ $MARK = B ] || sleep 60"]}\n'


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bench:
    def __init__(self, db_url: str, folder: Path, lease: float) -> None:
        self.db_url, self.folder, self.lease = db_url, folder, lease
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.engine = create_engine(db_url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api_token = self.runner_token = ""

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_"))
        }
        env.update(PYTHONPATH=str(ROOT), DATABASE_URL=self.db_url, **extra)
        return env

    async def start(self) -> None:
        await migrate(self.engine)
        store = TokenStore(self.engine)
        who = acting_as("user:bench")
        _, self.api_token = await store.create("api", parse_scopes(["runs:read,runs:write"]), who, "b", 1.0)
        _, self.runner_token = await store.create(
            "runner", parse_scopes(["runner"]), who, "b", 1.0, frozenset({"bench"})
        )
        env = self.env(
            PORT=str(self.port),
            SWITCHBOARD_WORKFLOWS_DIR=str(self.folder),
            SWITCHBOARD_CONSOLE="false",
            SWITCHBOARD_RUNNER_LEASE=str(self.lease),
            SWITCHBOARD_LOG_LEVEL="WARNING",
        )
        self.procs.append(self._spawn(["run"], env))
        for _ in range(600):
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("the server did not start")

    def runner(self, mark: str) -> subprocess.Popen[bytes]:
        args = ["runner", "--url", self.url, "--token", self.runner_token, "--labels", "bench"]
        proc = self._spawn(
            [*args, "--name", mark, "--concurrency", "4"],
            self.env(MARK=mark, SWITCHBOARD_LOG_LEVEL="WARNING"),
        )
        self.procs.append(proc)
        return proc

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start_runs(self, workflow: str, n: int) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        async with aiohttp.ClientSession(headers=headers) as s:

            async def one() -> str:
                async with s.post(f"{self.url}/api/v1/runs", json={"workflow": workflow, "inputs": {}}) as r:
                    body: dict[str, Any] = await r.json()
                    return str(body["id"])

            return list(await asyncio.gather(*(one() for _ in range(n))))

    async def wait_finished(self, run_ids: list[str]) -> None:
        while True:
            async with self.engine.connect() as conn:
                left = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(runs)
                    .where(runs.c.id.in_(run_ids), runs.c.status.notin_(("succeeded", "failed", "cancelled")))
                )
            if not left:
                return
            await asyncio.sleep(0.1)

    async def jobs(self, run_ids: list[str]) -> list[Any]:
        query = sa.select(runner_jobs).where(runner_jobs.c.run_id.in_(run_ids))
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).mappings())

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def figures(rows: list[Any]) -> tuple[list[float], list[float]]:
    """Per job: queued → leased, and queued → result stored less the program's run time (ms)."""
    dispatch = [(r["taken_at"] - r["created_at"]) * 1000 for r in rows if r["taken_at"]]
    overhead = [
        (
            r["finished_at"]
            - r["created_at"]
            - float((r["outcome"] or {}).get("result", {}).get("duration", 0))
        )
        * 1000
        for r in rows
        if r["finished_at"] and r["outcome"]
    ]
    return dispatch, overhead


async def one_at_a_time(bench: Bench, n: int) -> None:
    proc = bench.runner("S")
    await asyncio.sleep(3)
    ids = []
    for _ in range(n):
        ids += await bench.start_runs("noop", 1)
        await bench.wait_finished(ids[-1:])
    dispatch, overhead = figures(await bench.jobs(ids))
    print(
        f"one step at a time, {n} steps: dispatch p50 {pct(dispatch, 0.5):.0f} ms p99 {pct(dispatch, 0.99):.0f} ms;"
        f" overhead (queued -> result stored, less the program) p50 {pct(overhead, 0.5):.0f} ms"
        f" p99 {pct(overhead, 0.99):.0f} ms; {load()}"
    )
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


async def throughput(bench: Bench, runners: int, n: int) -> None:
    procs = [bench.runner(f"R{i}") for i in range(runners)]
    await asyncio.sleep(3)  # every runner registered and polling
    began = time.monotonic()
    ids = await bench.start_runs("noop", n)
    await bench.wait_finished(ids)
    took = time.monotonic() - began
    dispatch, _ = figures(await bench.jobs(ids))
    print(
        f"{runners} runner(s) x concurrency 4: {n} no-op steps started at once, done in {took:.2f}s = "
        f"{n / took:.1f} steps/s (queued -> leased p50 {pct(dispatch, 0.5):.0f} ms); {load()}"
    )
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def redispatch(bench: Bench) -> None:
    a = bench.runner("A")
    await asyncio.sleep(3)
    [run_id] = await bench.start_runs("slow", 1)
    while not any(r["status"] == "leased" for r in await bench.jobs([run_id])):
        await asyncio.sleep(0.05)
    b = bench.runner("B")
    await asyncio.sleep(3)
    killed = time.time()
    a.send_signal(signal.SIGKILL)
    a.wait()
    while True:
        again = [r for r in await bench.jobs([run_id]) if r["attempt"] == 2 and r["taken_at"]]
        if again:
            break
        await asyncio.sleep(0.05)
    print(
        f"re-dispatch after kill -9: {again[0]['taken_at'] - killed:.2f}s (lease {bench.lease:g}s); {load()}"
    )
    await bench.wait_finished([run_id])
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=20)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--lease", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=20, help="steps one at a time for the dispatch figures")
    parser.add_argument("--dispatch-only", action="store_true", help="only the one-step-at-a-time figures")
    args = parser.parse_args()
    schema = f"bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    base = PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "noop.yaml").write_text(NOOP)
        (folder / "slow.yaml").write_text(SLOW)
        bench = Bench(f"{base}?schema={schema}", folder, args.lease)
        try:
            await bench.start()
            print(f"remote runners on localhost, {args.runs} runs per row; {load()}")
            await one_at_a_time(bench, args.steps)
            if not args.dispatch_only:
                for count in (1, 2, 4):
                    await throughput(bench, count, args.runs)
                await redispatch(bench)
        finally:
            bench.close()
            await bench.engine.dispose()
            conn = await asyncpg.connect(PG_DSN)
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
