"""Outbound webhooks: how long an event waits for its first delivery attempt (goal: p95 at most 1 s).

    python bench/webhooks.py                       # 200 runs on SQLite, 10 at a time
    python bench/webhooks.py --runs 500 --parallel 20 --database-url postgresql+asyncpg://postgres@127.0.0.1/x

In one process, as the bot runs it: a runtime whose commits queue the events, the outbox that delivers
them, and a local receiver (aiohttp on 127.0.0.1) subscribed to run.* and step.*. The figure is the time
from the commit that made an event (its delivery row's created_at) to the first attempt leaving
(first_attempt_at), and to the receiver having it, printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.delivery.outbox import Outbox  # noqa: E402
from bot.delivery.webhooks import WebhookSender  # noqa: E402
from bot.runtime.presence import install  # noqa: E402
from bot.runtime.runtime import Runtime  # noqa: E402
from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from bot.storage.tables import webhook_deliveries  # noqa: E402
from bot.storage.webhook_queue import WebhookRows  # noqa: E402
from bot.storage.webhooks import Subscriptions  # noqa: E402
from engine.activities.http_guard import HttpGuard  # noqa: E402
from engine.loader import load_text  # noqa: E402

ONE = """
name: one
steps:
  a: {run: ["true"]}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(runs: int, parallel: int, database_url: str, folder: Path) -> None:
    arrived: dict[str, float] = {}

    async def receive(request: web.Request) -> web.Response:
        arrived[request.headers["webhook-id"]] = time.time()
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    settings = Settings(database_url=database_url, workflows_dir=folder)
    engine = create_engine(database_url)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine))
    install(runtime)
    sender = WebhookSender(WebhookRows(engine), runtime.owner, time.time, HttpGuard())
    outbox = Outbox(engine, {}, runtime.owner, time.time, webhooks=sender)
    runtime.after_commit.append(outbox.wake)
    await runtime.start(resume=False)
    outbox.start()
    await Subscriptions(engine).add(
        f"http://127.0.0.1:{port}/hook", ["run.*", "step.*"], "bench", time.time()
    )
    loaded = load_text(ONE, "one.yaml")
    slots = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with slots:
            started = await runtime.submit(loaded, {}, started_by="bench")
            while (row := await runtime.store.run_row(started.run_id)) is None or row.status != "succeeded":
                await asyncio.sleep(0.02)

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(runs)))
    expected = runs * 4  # run.started, step.started, step.succeeded, run.finished
    while len(arrived) < expected and time.monotonic() - began < 120:
        await asyncio.sleep(0.05)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(webhook_deliveries))).all()
    await outbox.stop()
    await runtime.stop()
    await engine.dispose()
    await runner.cleanup()

    first = [r.first_attempt_at - r.created_at for r in rows if r.first_attempt_at is not None]
    received = [arrived[r.message_id] - r.created_at for r in rows if r.message_id in arrived]
    load = os.getloadavg()
    print(
        f"{len(rows)} events from {runs} runs ({parallel} at a time), {len(received)} received; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for name, values in (("to first attempt", first), ("to the receiver", received)):
        if values:
            print(
                f"  {name:<17} p50 {statistics.median(values) * 1000:6.1f} ms   "
                f"p95 {pct(values, 95) * 1000:6.1f} ms   max {max(values) * 1000:6.1f} ms"
            )
    if first:
        verdict = "meets" if pct(first, 95) <= 1.0 else "MISSES"
        print(f"  goal: p95 to first attempt <= 1 s: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(main(args.runs, args.parallel, url, Path(tmp)))
