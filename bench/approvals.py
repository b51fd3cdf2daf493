"""Approval benchmarks: prints figures for the whole bot in one process (``start_app``, with the console).

    python bench/approvals.py                      # everything, SQLite then PostgreSQL
    python bench/approvals.py click deadline --db sqlite

Figures (targets from the approvals issue):
  click     an Approve click through the Router (console identities) -> the next step started, one process:
            p50/p95 over 50 runs (target p95 <= 100 ms); also when the click was answered
  pending   10,000 pending approvals (each with 3 timers, and its run's cards delivered): a fresh bot process
            from start to ready (server up, runs resumed, alarms armed) and its peak RSS (<= 3 s, <= 250 MB)
  deadline  20 approvals timing out 1-2 s after they are asked, fired by the real alarm clock:
            when the timeout was applied minus when it was due, p50 and max (<= 1 s)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_db import fresh_url  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.identity import Identity, Place  # noqa: E402
from bot.process import App, start_app, stop_app  # noqa: E402
from bot.storage.database import create_engine  # noqa: E402
from bot.storage.tables import approval_audit, approvals, chat_cards, chat_posts  # noqa: E402
from cards.model import action_id  # noqa: E402
from handlers.types import Click, Command  # noqa: E402

PENDING = approvals.c.status == "pending"
OPS = Place("console", "ops", channel_name="#ops")
APPROVALS = Place("console", "approvals", channel_name="#approvals")
ERIN = Identity("console", "console", "erin", "erin")  # starts the runs
ALICE = Identity("console", "console", "alice", "alice", frozenset({"release-managers"}))
GATE = """
name: gate
steps:
  ask:
    approval:
      title: "Ship #${{ inputs.n }}?"
      approvers: ["group:release-managers", "user:carol"]
      channel: "#approvals"
      timeout: TIMEOUT
      escalation: [{after: 30m, remind: true}, {after: 2h, add_approvers: ["group:eng-directors"]}]
  next: {needs: [ask], action: examples.actions:noop}
inputs: {n: {type: integer, default: 0}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def folder(timeouts: dict[str, str] | None = None) -> Path:
    """A workflows folder with gate workflows (name -> timeout) and the example actions (the no-op step)."""
    work = Path(tempfile.mkdtemp(prefix="sb-approvals-"))
    (work / "examples").symlink_to(ROOT / "workflows" / "examples")
    for name, timeout in (timeouts or {"gate": "24h"}).items():
        (work / f"{name}.yaml").write_text(
            GATE.replace("TIMEOUT", timeout).replace("name: gate", f"name: {name}")
        )
    return work


async def bot(url: str, work: Path, **overrides: Any) -> App:
    settings = Settings(database_url=url, workflows_dir=work, port=0, log_level="WARNING", **overrides)
    return await start_app(settings)


async def count(app: App, table: sa.Table, *where: Any) -> int:
    """How many rows of ``table`` match."""
    query = sa.select(sa.func.count()).select_from(table).where(*where)
    async with app.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def until_count(app: App, wanted: int, table: sa.Table, *where: Any, timeout: float = 300) -> None:
    async with asyncio.timeout(timeout):
        while await count(app, table, *where) < wanted:
            await asyncio.sleep(0.05)


async def start_runs(app: App, runs: int) -> None:
    """Start ``runs`` runs from chat, as erin in #ops, 50 at a time, and wait until each waits."""
    before = await count(app, approvals, PENDING)
    for batch in range(0, runs, 50):
        await asyncio.gather(
            *(
                app.router.command(Command(ERIN, OPS, "workflow", f"run gate n={n}"))
                for n in range(batch, min(batch + 50, runs))
            )
        )
    await until_count(app, before + runs, approvals, PENDING)


async def bench_click(url: str, runs: int = 50) -> str:
    app = await bot(url, folder())
    try:
        await start_runs(app, 5)  # warm up: imports, caches, first cards
        for request in await app.runtime.approvals.pending():
            await app.router.click(Click(ALICE, APPROVALS, action_id("approval", request.id, "approve")))
        await start_runs(app, runs)
        await asyncio.sleep(2)  # let the outbox post the new cards, so the clicks meet an idle process
        answered, started = [], []
        for request in await app.runtime.approvals.pending():
            with app.runtime.hub.subscribe(request.run_id) as queue:
                t0 = time.perf_counter()
                reply = await app.router.click(
                    Click(ALICE, APPROVALS, action_id("approval", request.id, "approve"))
                )
                answered.append(time.perf_counter() - t0)
                assert "Approved by" in str(reply), reply
                while True:
                    event = await asyncio.wait_for(queue.get(), 10)
                    if event.type == "step_started" and event.step_key == "next":
                        started.append(time.perf_counter() - t0)
                        break
        ms = [s * 1000 for s in started]
        ack = [a * 1000 for a in answered]
        return (
            f"approve click -> next step started ({len(ms)} runs): p50 {statistics.median(ms):.1f} ms, "
            f"p95 {pct(ms, 0.95):.1f} ms (click answered: p50 {statistics.median(ack):.1f} ms, "
            f"p95 {pct(ack, 0.95):.1f} ms)"
        )
    finally:
        await stop_app(app)


async def seed_pending(url: str, work: Path, runs: int) -> None:
    app = await bot(url, work, console=False)
    try:
        await start_runs(app, runs)
        async with asyncio.timeout(300):
            while app.runtime.live:
                await asyncio.sleep(0.1)
    finally:
        await stop_app(app)
    # A bot that has been up while these arrived has delivered their cards: mark them sent, as it would.
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            chat_cards.update().values(sent_version=chat_cards.c.version, message_ref=chat_cards.c.key)
        )
        await conn.execute(chat_posts.update().values(status="sent", message_ref="seeded"))
    await engine.dispose()


def bench_pending(url: str, runs: int = 10_000) -> str:
    work = folder()
    asyncio.run(seed_pending(url, work, runs))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    spawned = time.time()
    probe = subprocess.run(
        [sys.executable, str(Path(__file__)), "_probe", "--url", url, "--work", str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        raise RuntimeError(probe.stderr)
    ready_at, rss, pending, cards = probe.stdout.split()
    return (
        f"{int(pending):,} pending approvals ({int(cards):,} chat cards): bot process start to ready "
        f"{float(ready_at) - spawned:.2f} s, peak RSS {rss} MB"
    )


def probe(url: str, work: Path) -> None:
    """In a fresh process: start the whole bot; print when it was ready, peak RSS (MB), pending, cards."""

    async def go() -> tuple[float, int, int]:
        app = await bot(url, work)
        ready_at = time.time()
        try:
            return ready_at, await count(app, approvals, PENDING), await count(app, chat_cards)
        finally:
            await stop_app(app)

    ready_at, pending, cards = asyncio.run(go())
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) // 1024
    print(f"{ready_at} {rss} {pending} {cards}")


async def bench_deadline(url: str, runs: int = 20) -> str:
    app = await bot(url, folder({f"gate{i}": f"{1 + i / (runs - 1):.3f}" for i in range(runs)}))
    try:
        for i in range(runs):  # timeouts spread over 1-2 s
            await app.router.command(Command(ERIN, OPS, "workflow", f"run gate{i}"))
        expired = approval_audit.c.action == "expired"
        await until_count(app, runs, approval_audit, expired, timeout=30)
        # When the timeout was applied (the audit record of the expiry) minus when it was due.
        joined = approval_audit.join(approvals, approvals.c.id == approval_audit.c.approval_id)
        query = sa.select(approval_audit.c.at - approvals.c.expires_at).select_from(joined).where(expired)
        async with app.engine.connect() as conn:
            delays = [float(d) for d in (await conn.execute(query)).scalars()]
        return (
            f"deadline firing delay ({len(delays)} approvals, 1-2 s timeouts): "
            f"p50 {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms after it was due"
        )
    finally:
        await stop_app(app)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", default=["click", "pending", "deadline"])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--url")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--pending", type=int, default=10_000)
    args = parser.parse_args()
    if args.figures == ["_probe"]:
        probe(args.url, args.work)
        return
    for kind in args.db or ["sqlite", "postgres"]:
        for figure in args.figures:
            url = fresh_url(kind)
            if figure == "click":
                line = asyncio.run(bench_click(url))
            elif figure == "pending":
                line = bench_pending(url, args.pending)
            elif figure == "deadline":
                line = asyncio.run(bench_deadline(url))
            else:
                raise SystemExit(f"unknown figure {figure!r}")
            print(f"[{kind:8}] {line}", flush=True)


if __name__ == "__main__":
    main()
