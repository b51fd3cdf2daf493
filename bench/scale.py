"""Throughput with 1, 2 and 3 `switchboard run` processes sharing one PostgreSQL database, in one run.

    python bench/scale.py                      # 150 runs, 1, 2 then 3 processes
    python bench/scale.py --runs 300 --processes 1 --processes 3

The same workload each time, on a fresh schema: a client (this process, driving nothing) stores every run
unclaimed at once, as `workflow run --detach` does, and the bots share them (claimed in batches, told by
NOTIFY). Each run fans out over three items, retries a step that fails once, waits 1 s, and waits on an
approval that this client decides as soon as it appears: another process than the one driving the run.
It prints runs/s from the first start to the last finish, timer lateness (p50, p99), how the runs spread
over the processes, and the load average beside them: a loaded machine stretches every figure. At the end
of each round it counts what happened twice (each must be 0; see ``duplicates``): steps started, timers
fired, votes applied, cards and posts on Slack; and the most posts that went into one channel in any 1 s
window over the whole round, with the closest two (Slack allows about one a second per channel).

Two more phases on the same bots, after the burst:
- chat: ``--chat-runs`` runs started from Slack's #ops (the fake Slack Web API of tests/fakes, served by
  this process, which every bot posts to) each post a status card and two thread replies into that one
  channel; it prints the most posts that went into the channel in any 1 s window and the mean rate, across
  every process (Slack allows about one a second per channel);
- takeover (2 or more processes): ``--kills`` times, a run holding a long step is started, the bot driving
  it is killed with kill -9, and the time until another bot holds its lease is measured (same host, so
  the pid check, not the lease's expiry, lets it go); the killed bot is replaced before the next round.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.owners import parse_owner  # noqa: E402
from bot.runtime.runtime import Runtime  # noqa: E402
from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from bot.storage.tables import approval_audit, approvals, events, inbox, runs, step_runs, timers  # noqa: E402
from engine.loader import load_text  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
WORKLOAD = """
name: scale
steps:
  fan: {for_each: [1, 2, 3], run: ["sh", "-c", "echo $PPID"]}
  flaky:
    needs: [fan]
    run: ["sh", "-c", "echo $PPID; [ $SWITCHBOARD_ATTEMPT -ge 2 ]"]
    retry: {attempts: 3, initial: 0.5s}
  pause: {needs: [flaky], wait: 1s}
  ask: {needs: [pause], approval: {title: "ship it?"}}
  done: {needs: [ask], run: ["sh", "-c", "echo $PPID"]}
"""
CHAT = """
name: chatty
steps:
  work: {run: ["sh", "-c", "echo $PPID"]}
  tell: {needs: [work], notify: "done on ${{ steps.work.outputs.stdout }}"}
"""
HOLD = """
name: hold
steps:
  long: {run: ["sleep", "600"]}
"""
OPS = {"platform": "slack", "channel": "C0OPS", "thread": None, "channel_name": "#ops"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(60):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"a bot exited with {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


def spawn(url: str, work: Path, port: int, max_runs: int, slack: FakeSlack) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_"))}
    env.update(
        DATABASE_URL=url,
        SWITCHBOARD_WORKFLOWS_DIR=str(work),
        SWITCHBOARD_CONSOLE="false",
        SWITCHBOARD_LOG_LEVEL="WARNING",
        SWITCHBOARD_MAX_RUNS=str(max_runs),
        # PostgreSQL's 100 connections are shared with whatever else runs (BENCH_POOL: pool size = overflow)
        SWITCHBOARD_DB_POOL_SIZE=os.environ.get("BENCH_POOL", "5"),
        SWITCHBOARD_DB_MAX_OVERFLOW=os.environ.get("BENCH_POOL", "5"),
        PORT=str(port),
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=slack.signing_secret,
        SWITCHBOARD_SLACK_API_URL=slack.base_url,
    )
    argv = [sys.executable, "-m", "bot.cli.main", "run"]
    logs = os.environ.get("BENCH_LOGS")  # a folder: each bot logs there at INFO, one file per process
    if logs:
        env["SWITCHBOARD_LOG_LEVEL"] = "INFO"
        out = Path(logs, f"bot-{port}.log").open("w")  # noqa: SIM115  (the child holds it)
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=None)


async def decide_all(client: Runtime, total: int, stop: asyncio.Event) -> int:
    """Approve every pending request as it appears, from this process (not the one driving the run)."""
    decided: set[str] = set()
    pending = sa.select(approvals.c.id).where(approvals.c.status == "pending")
    while not stop.is_set() and len(decided) < total:
        async with client.store.engine.connect() as conn:
            found = [i for i in (await conn.execute(pending)).scalars() if i not in decided]
        for approval_id in found:
            await client.decide(approval_id, "console:bench", "approve", background=False)
            decided.add(approval_id)
        if not found:
            await asyncio.sleep(0.1)
    return len(decided)


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` (seconds) in any window of 1 s."""
    ordered, most, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def duplicates(engine: sa.ext.asyncio.AsyncEngine, slack: FakeSlack) -> dict[str, int]:
    """What happened more than once, counted from the database and from the fake Slack's own messages.

    - steps: a step attempt started twice (two ``step_started`` events of one run, step and attempt);
    - timers: a timer's mail to its run beyond one per timer (a timer armed twice, or fired twice: the
      mail is what the run acts on), matched by run, step, kind and due time;
    - votes: a decision applied twice (two ``approval_decided`` events of one run and step), or one
      person's vote, decision or request recorded twice in the audit;
    - cards: a card's message posted twice on Slack (by its key in the message metadata, every channel);
    - posts: a post's message on Slack twice.
    """
    async with engine.connect() as conn:
        started = (
            await conn.execute(
                sa.select(events.c.run_id, events.c.step_key, events.c.data).where(
                    events.c.type == "step_started"
                )
            )
        ).all()
        fired = (
            await conn.execute(
                sa.select(timers.c.run_id, timers.c.step_key, timers.c.kind, timers.c.due_at).where(
                    timers.c.fired_at.is_not(None)
                )
            )
        ).all()
        mail = (
            await conn.execute(sa.select(inbox.c.run_id, inbox.c.payload).where(inbox.c.kind == "timer"))
        ).all()
        decided = (
            await conn.execute(
                sa.select(events.c.run_id, events.c.step_key).where(events.c.type == "approval_decided")
            )
        ).all()
        audit = (
            await conn.execute(
                sa.select(approval_audit.c.approval_id, approval_audit.c.actor, approval_audit.c.action)
            )
        ).all()

    def extra(counts: Counter[Any]) -> int:
        return sum(n - 1 for n in counts.values() if n > 1)

    logical = {(t.run_id, t.step_key, t.kind, round(t.due_at, 3)) for t in fired}
    by_timer = Counter((m.run_id, m.payload.get("key"), m.payload.get("kind")) for m in mail)
    armed = Counter((run_id, key, kind) for run_id, key, kind, _ in logical)
    keys = Counter(
        str(((m.get("metadata") or {}).get("event_payload") or {}).get("key", ""))
        for messages in slack.messages.values()
        for m in messages
    )
    return {
        "steps": extra(Counter((r.run_id, r.step_key, r.data.get("attempt")) for r in started)),
        "timers": sum(max(0, n - armed[k]) for k, n in by_timer.items()),
        "votes": extra(Counter(decided)) + extra(Counter(audit)),
        "cards": sum(n - 1 for k, n in keys.items() if k.startswith("sb-card-") and n > 1),
        "posts": sum(n - 1 for k, n in keys.items() if k.startswith("sb-post-") and n > 1),
    }


def busiest_channel(slack: FakeSlack) -> tuple[int, str, float]:
    """The most posts into one channel in any 1 s window over the whole bench, that channel, and the
    closest two posts into one channel (seconds), from the fake Slack's records of every accepted post."""
    by_channel: dict[str, list[float]] = {}
    for call in slack.delivered("chat.postMessage"):
        by_channel.setdefault(str(call.params.get("channel")), []).append(call.at)
    if not by_channel:
        return 0, "-", float("nan")
    most, channel = max((busiest_second(times), name) for name, times in by_channel.items())
    closest = min(
        (b - a for times in by_channel.values() for a, b in itertools.pairwise(sorted(times))),
        default=float("nan"),
    )
    return most, channel, closest


async def until_quiet(engine: sa.ext.asyncio.AsyncEngine, timeout: float = 300) -> None:
    """Wait until the outbox has sent every post and every card's newest version."""
    from bot.storage.tables import chat_cards, chat_posts

    async with asyncio.timeout(timeout):
        while True:
            async with engine.connect() as conn:
                posts = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(chat_posts)
                        .where(chat_posts.c.status != "sent")
                    )
                ).scalar_one()
                cards = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(chat_cards)
                        .where(chat_cards.c.sent_version < chat_cards.c.version)
                    )
                ).scalar_one()
            if posts == 0 and cards == 0:
                return
            await asyncio.sleep(0.2)


async def chat_phase(client: Runtime, engine: sa.ext.asyncio.AsyncEngine, slack: FakeSlack, n: int) -> str:
    """Chat runs from #ops: how fast their posts went into the one channel, across every process."""
    if n <= 0:
        return "chat: skipped"
    loaded = load_text(CHAT, "chatty.yaml")
    before = len(slack.calls)
    ids = [
        (
            await client.submit(loaded, {}, started_by="slack:U0BENCH", meta={"origin": OPS}, drive=False)
        ).run_id
        for _ in range(n)
    ]
    finished = (
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.id.in_(ids), runs.c.finished_at.is_not(None))
    )
    async with asyncio.timeout(300):
        while True:
            async with engine.connect() as conn:
                if (await conn.execute(finished)).scalar_one() >= n:
                    break
            await asyncio.sleep(0.2)
    await until_quiet(engine)
    posted = [
        c.at
        for c in slack.calls[before:]
        if c.method == "chat.postMessage" and c.status == 200 and c.params.get("channel") == "C0OPS"
    ]
    span = max(posted) - min(posted) if len(posted) > 1 else 0.0
    ordered = sorted(posted)
    gap = min((b - a for a, b in itertools.pairwise(ordered)), default=float("nan"))
    mean = (len(posted) - 1) / span if span > 0 else float("nan")
    return (
        f"chat: {n} runs from #ops, {len(posted)} posts into it; most in any 1 s {busiest_second(posted)}, "
        f"mean {mean:.2f} posts/s over {span:.1f} s, closest two {gap:.2f} s apart (all processes together)"
    )


async def takeover_phase(
    client: Runtime,
    engine: sa.ext.asyncio.AsyncEngine,
    procs: list[subprocess.Popen[bytes]],
    respawn: Callable[[], Awaitable[subprocess.Popen[bytes]]],
    kills: int,
) -> str:
    """Kill -9 the bot driving a run, ``kills`` times: how long until another bot holds its lease."""
    if len(procs) < 2 or kills <= 0:
        return "takeover: skipped (needs 2 or more processes)"
    loaded = load_text(HOLD, "hold.yaml")
    times: list[float] = []
    for _ in range(kills):
        run_id = (await client.submit(loaded, {}, started_by="bench", drive=False)).run_id
        owner_of = sa.select(runs.c.lease_owner).where(runs.c.id == run_id)
        running = sa.select(step_runs.c.status).where(step_runs.c.run_id == run_id, step_runs.c.key == "long")
        async with asyncio.timeout(60):
            while True:
                async with engine.connect() as conn:
                    owner = (await conn.execute(owner_of)).scalar_one_or_none()
                    step = (await conn.execute(running)).scalar_one_or_none()
                if owner and step == "running":
                    break
                await asyncio.sleep(0.05)
        parsed = parse_owner(owner)
        victim = next(p for p in procs if parsed is not None and p.pid == parsed.pid)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        async with asyncio.timeout(120):
            while True:
                async with engine.connect() as conn:
                    now_owner = (await conn.execute(owner_of)).scalar_one_or_none()
                if now_owner and now_owner != owner:
                    break
                await asyncio.sleep(0.01)
        times.append(time.monotonic() - killed)
        victim.wait()
        procs.remove(victim)
        procs.append(await respawn())
        await client.cancel(run_id, "bench")
    return (
        f"takeover after kill -9 (same host, {len(times)} kills): median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s"
    )


async def scale(total: int, processes: int, max_runs: int, chat_runs: int, kills: int) -> str:
    schema, url = await fresh_schema()
    work = Path(tempfile.mkdtemp(prefix="sb-scale-"))
    (work / "scale.yaml").write_text(WORKLOAD)
    slack = await FakeSlack().__aenter__()
    engine = create_engine(url)
    procs: list[subprocess.Popen[bytes]] = []
    await migrate(engine)
    settings = Settings(database_url=url, workflows_dir=work, log_level="WARNING", console=False)
    client = Runtime(settings, RunStore(engine), scope=set())
    await client.start(resume=False)
    stop = asyncio.Event()
    try:

        async def respawn() -> subprocess.Popen[bytes]:
            port = free_port()
            proc = spawn(url, work, port, max_runs, slack)
            await listening(port, proc)
            return proc

        for _ in range(processes):  # one by one: a starting bot could take the next one's port
            procs.append(await respawn())
        loaded = load_text(WORKLOAD, "scale.yaml")
        started = time.monotonic()
        for at in range(0, total, 50):
            await asyncio.gather(
                *(
                    client.submit(loaded, {}, started_by="bench", drive=False)
                    for _ in range(at, min(at + 50, total))
                )
            )
        decider = asyncio.create_task(decide_all(client, total, stop))
        finished = runs.c.finished_at.is_not(None)
        async with asyncio.timeout(1200):
            while True:
                async with engine.connect() as conn:
                    done = (
                        await conn.execute(sa.select(sa.func.count()).select_from(runs).where(finished))
                    ).scalar_one()
                if done >= total:
                    break
                await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        stop.set()
        await decider
        async with engine.connect() as conn:
            statuses = Counter(
                dict(
                    (
                        await conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status))
                    ).all()
                )
            )
            fired = (await conn.execute(sa.select(timers.c.due_at, timers.c.fired_at))).all()
            last_steps = (
                await conn.execute(sa.select(step_runs.c.outputs).where(step_runs.c.key == "done"))
            ).scalars()
            by_process = Counter(str((o or {}).get("stdout", "")).strip() for o in last_steps)
        chat = await chat_phase(client, engine, slack, chat_runs)
        takeover = await takeover_phase(client, engine, procs, respawn, kills)
        await until_quiet(engine)  # the takeover runs' cancellations are on their cards too
        twice = await duplicates(engine, slack)
        most, channel, closest = busiest_channel(slack)
    finally:
        stop.set()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await client.stop(grace=0.1)
        await engine.dispose()
        await drop_schema(schema)
        await slack.__aexit__(None, None, None)
    late = [f.fired_at - f.due_at for f in fired if f.fired_at is not None]
    shares = "/".join(str(n) for _pid, n in by_process.most_common()) or "?"
    return (
        f"{processes} process(es): {total} runs in {elapsed:.1f} s = {total / elapsed:.2f} runs/s "
        f"({dict(statuses)}; done steps by process {shares}); timers late p50 {pct(late, 0.5):.3f} s, "
        f"p99 {pct(late, 0.99):.3f} s; {load()}\n  {chat}; {load()}\n  {takeover}; {load()}"
        f"\n  duplicated (each must be 0): steps {twice['steps']}, timers {twice['timers']}, votes "
        f"{twice['votes']}, cards {twice['cards']}, posts {twice['posts']}; most posts into one channel in "
        f"any 1 s: {most} ({channel}; closest two posts into one channel {closest:.3f} s apart)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--processes", type=int, action="append")
    parser.add_argument("--max-runs", type=int, default=100, help="SWITCHBOARD_MAX_RUNS of each process")
    parser.add_argument("--chat-runs", type=int, default=6, help="runs started from #ops (0: no chat phase)")
    parser.add_argument("--kills", type=int, default=5, help="kill -9 rounds of the takeover phase")
    args = parser.parse_args()
    print(f"before: {load()}", flush=True)
    for processes in args.processes or [1, 2, 3]:
        figures = scale(args.runs, processes, args.max_runs, args.chat_runs, args.kills)
        print(asyncio.run(figures), flush=True)


if __name__ == "__main__":
    main()
