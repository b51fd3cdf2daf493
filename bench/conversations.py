"""Conversation benchmarks: prints figures for the conversation service (bot/conversations), one process.

    python bench/conversations.py                    # every figure, on SQLite
    python bench/conversations.py --pg               # the same on SQLite, then on PostgreSQL
    python bench/conversations.py turn --profile     # one figure, with a cProfile of its measured part

The LLM is the fake OpenAI server (tests/fakes/openai_server.py, echoing instantly), run in a child
process so its work and memory are not the bot's; the bot talks to it with the real ``openai`` client.

Figures (targets from the conversations issue):
  turn     one assistant turn, excluding the LLM call: from ``user_said`` returning to the reply's outbox
           row committed (``Conversations.reply`` returned), minus the time inside
           ``Assistant._complete``; debounce 0, 60 users x 5 messages one after another, p50/p95
           (target p50 <= 20 ms)
  burst    1,000 users each sending one message at once (debounce 0): wall time until every reply's
           outbox row is committed, turns/s, and the process RSS before/after (and its peak)
  claim    claim -> handover card updated, 200 queued conversations claimed one after another by 10
           agents: (a) ``desk.claim`` called -> the chat_cards row read back with its new version;
           (b) through the whole bot (``start_app``, console only): ``desk.claim`` called -> the outbox
           has edited the card's console_messages row (target p95 <= 100 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_db import drop, fresh_url  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.conversations.service import Conversations, make_conversations  # noqa: E402
from bot.identity import Identity  # noqa: E402
from bot.process import start_app, stop_app  # noqa: E402
from bot.runtime.catalog import Catalog  # noqa: E402
from bot.runtime.runtime import Runtime  # noqa: E402
from bot.storage.conversations.rows import Inbound  # noqa: E402
from bot.storage.database import engine_for, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from bot.storage.tables import chat_cards, chat_posts  # noqa: E402

AGENTS = [Identity("console", "console", f"agent{i}", f"agent{i}", frozenset({"agents"})) for i in range(10)]
Row = tuple[str, str, str, str]  # figure, value, target, verdict


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def user(i: int) -> Identity:
    return Identity("console", "console", f"u{i}", f"u{i}")


def said(i: int, text: str, n: int = 0) -> Inbound:
    """A DM from user ``i`` (the console names a DM channel after its user)."""
    who = user(i)
    return Inbound(who, "console", f"@{who.name}", text, event_key=f"console:{i}:{n}", direct=True)


def rss_mb() -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MB (/proc/self/status)."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


class FakeLLM:
    """tests/fakes/openai_server.FakeOpenAI (echoing, instant) in a child process."""

    def __enter__(self) -> FakeLLM:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "_fake"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_fake() -> None:
    """The child process: serve the fake until stdin closes."""
    from tests.fakes.openai_server import FakeOpenAI

    async def go() -> None:
        async with FakeOpenAI() as fake:
            print(fake.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(go())


def settings(url: str, llm: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "workflows_dir": Path(tempfile.mkdtemp(prefix="sb-conv-")),
        "log_level": "WARNING",
        "port": 0,
        "debounce": 0.0,
        "llm_retries": 0,
        "llm_timeout": 60.0,
        "agent_capacity": 25,
    }
    if llm is not None:
        values.update(openai_api_key="k", openai_base_url=llm)
    values.update(overrides)
    return Settings(**values)


class Service:
    """The conversation service on a started runtime (as tests/conversation_env.py builds it), with
    probes: when each conversation's reply was committed, and the time spent in the LLM call."""

    def __init__(self, runtime: Runtime, service: Conversations) -> None:
        self.runtime = runtime
        self.service = service
        self.llm_time = 0.0
        self.replied: dict[str, asyncio.Future[float]] = {}
        if service.assistant is not None:
            complete = service.assistant._complete

            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await complete(*args, **kwargs)
                finally:
                    self.llm_time += time.perf_counter() - t0

            service.assistant._complete = timed  # type: ignore[method-assign]
        reply = service.reply

        async def replied(conv: Any, *args: Any, **kwargs: Any) -> bool:
            ok = await reply(conv, *args, **kwargs)  # returns after its transaction committed
            self.future(conv.id).set_result(time.perf_counter())
            return ok

        service.reply = replied  # type: ignore[method-assign]

    def future(self, conv_id: str) -> asyncio.Future[float]:
        if conv_id not in self.replied:
            self.replied[conv_id] = asyncio.get_running_loop().create_future()
        return self.replied[conv_id]

    @classmethod
    async def start(cls, url: str, llm: str | None, **overrides: Any) -> Service:
        config = settings(url, llm, **overrides)
        engine = engine_for(config)  # the pool a bot process gets (SWITCHBOARD_DB_*), not a bigger one
        await migrate(engine)
        runtime = Runtime(config, RunStore(engine))
        await runtime.start(resume=True)
        service = make_conversations(runtime, Catalog(config.workflows_dir), lambda: None)
        await service.start()
        return cls(runtime, service)

    async def stop(self) -> None:
        await self.service.stop()
        await self.runtime.stop(grace=1.0)
        await self.runtime.store.engine.dispose()


async def profiled(enabled: bool, label: str, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body``; with ``enabled``, under cProfile, printing the top functions by cumulative time."""
    if not enabled:
        return await body()
    prof = cProfile.Profile()
    prof.enable()
    try:
        return await body()
    finally:
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
        stats.print_stats(45)
        print(f"--- cProfile: {label} (cumulative) ---\n{out.getvalue()}", flush=True)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile: {label} (own time) ---\n{out.getvalue()}", flush=True)


# -- 1. turn overhead ------------------------------------------------------------------------------


async def bench_turn(url: str, llm: str, users: int = 60, each: int = 5, profile: bool = False) -> list[Row]:
    env = await Service.start(url, llm)
    try:

        async def one(i: int, n: int) -> tuple[float, float, float, float]:
            env.llm_time = 0.0
            t0 = time.perf_counter()
            conv = await env.service.user_said(said(i, f"message {n} from u{i}: how do I deploy?", n))
            t1 = time.perf_counter()
            assert conv is not None
            done = await asyncio.wait_for(env.future(conv.id), 30)
            del env.replied[conv.id]
            return t1 - t0, done - t1, env.llm_time, done - t1 - env.llm_time

        for i in range(5):  # warm up: imports, the client's connection, first statements
            await one(10_000 + i, 0)

        async def measured() -> list[tuple[float, float, float, float]]:
            return [await one(i, n) for n in range(each) for i in range(users)]

        samples = await profiled(profile, "turn", measured)
    finally:
        await env.stop()
    intake, raw, llm_ms, turn = ([s[k] * 1000 for s in samples] for k in range(4))
    p50 = statistics.median(turn)
    return [
        (
            f"turn overhead excl. LLM ({len(turn)} turns): p50 / p95",
            f"{p50:.1f} / {pct(turn, 0.95):.1f} ms",
            "p50 <= 20 ms",
            "ok" if p50 <= 20 else "MISSED",
        ),
        (
            "  same, including the LLM call: p50 / p95",
            f"{statistics.median(raw):.1f} / {pct(raw, 0.95):.1f} ms",
            "",
            "",
        ),
        (
            "  of which in Assistant._complete: p50 / p95",
            f"{statistics.median(llm_ms):.1f} / {pct(llm_ms, 0.95):.1f} ms",
            "",
            "",
        ),
        (
            "  user_said itself (before the turn): p50 / p95",
            f"{statistics.median(intake):.1f} / {pct(intake, 0.95):.1f} ms",
            "",
            "",
        ),
    ]


# -- 2. a burst of 1,000 conversations -------------------------------------------------------------


async def bench_burst(url: str, llm: str, users: int = 1000, profile: bool = False) -> list[Row]:
    env = await Service.start(url, llm)
    try:
        for i in range(5):  # warm up, as above
            conv = await env.service.user_said(said(10_000 + i, "hello"))
            assert conv is not None
            await asyncio.wait_for(env.future(conv.id), 30)
        before, _ = rss_mb()

        async def burst() -> tuple[float, float, int, int, int]:
            t0 = time.perf_counter()
            convs = await asyncio.gather(
                *(env.service.user_said(said(i, f"hi from u{i}")) for i in range(users)),
                return_exceptions=True,  # a message that fails is counted, not the end of the bench
            )
            taken = time.perf_counter() - t0
            failed = [c for c in convs if isinstance(c, BaseException)]
            for error in failed[:3]:
                print(f"  a message failed: {error!r}", file=sys.stderr)
            ids = [c.id for c in convs if c is not None and not isinstance(c, BaseException)]
            done, _ = await asyncio.wait([env.future(c) for c in ids], timeout=600)
            return taken, time.perf_counter() - t0, len(done), len(failed), len(ids) - len(done)

        taken, wall, replies, failed, unanswered = await profiled(profile, "burst", burst)
        after, peak = rss_mb()
        pool = f"{env.runtime.settings.db_pool_size} + {env.runtime.settings.db_max_overflow}"
    finally:
        await env.stop()
    return [
        (
            f"{users:,} concurrent conversations: wall / turns per s",
            f"{wall:.2f} s / {replies / wall:.0f}",
            "",
            "",
        ),
        ("  every user_said returned after", f"{taken:.2f} s", "", ""),
        ("  messages failed / left unanswered", f"{failed} / {unanswered}", "", "(goal 0 / 0)"),
        ("  pool (SWITCHBOARD_DB_POOL_SIZE + _MAX_OVERFLOW)", f"{pool}", "", ""),
        (
            "  process RSS before / after (peak)",
            f"{before:.0f} / {after:.0f} MB ({peak:.0f} MB)",
            "",
            "",
        ),
    ]


# -- 3. claim -> card updated ----------------------------------------------------------------------


async def card_version(engine: Any, key: str) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(sa.select(chat_cards.c.version).where(chat_cards.c.key == key))).scalar_one()
        )


async def queue_up(service: Conversations, first: int, count: int) -> list[str]:
    """``count`` users write; with no LLM each conversation goes straight to the queue (a card is drawn)."""
    ids = []
    for i in range(first, first + count):
        conv = await service.user_said(said(i, "my deploy is stuck, a person please"))
        assert conv is not None
        ids.append(conv.id)
    return ids


async def register_agents(service: Conversations) -> None:
    for who in AGENTS:
        await service.store.set_agent(who, service.clock(), available=True, capacity=25)


async def bench_claim_row(url: str, claims: int = 200, profile: bool = False) -> list[Row]:
    env = await Service.start(url, None)
    service, engine = env.service, env.runtime.store.engine
    try:
        await register_agents(service)
        warm = await queue_up(service, 10_000, 5)
        ids = await queue_up(service, 0, claims)
        for n, conv_id in enumerate(warm):
            await service.desk.claim(conv_id, AGENTS[n % len(AGENTS)])

        async def measured() -> list[float]:
            times = []
            for n, conv_id in enumerate(ids):
                key = f"conversation:{conv_id}"
                version = await card_version(engine, key)
                t0 = time.perf_counter()
                answer = await service.desk.claim(conv_id, AGENTS[n % len(AGENTS)])
                assert answer.startswith("You have claimed"), answer
                assert await card_version(engine, key) > version
                times.append(time.perf_counter() - t0)
            return times

        ms = [t * 1000 for t in await profiled(profile, "claim (row)", measured)]
    finally:
        await env.stop()
    p95 = pct(ms, 0.95)
    return [
        (
            f"claim -> chat_cards row updated ({len(ms)}): p50 / p95",
            f"{statistics.median(ms):.1f} / {p95:.1f} ms",
            "p95 <= 100 ms",
            "ok" if p95 <= 100 else "MISSED",
        )
    ]


async def bench_claim_console(url: str, claims: int = 200, profile: bool = False) -> list[Row]:
    """Through the whole bot: the outbox delivers the redrawn card to the console (console_messages)."""
    # The users write in DMs: console users, so the outbox delivers what they are told.
    users: dict[str, list[str]] = {f"u{i}": [] for i in [*range(claims), *range(10_000, 10_005)]}
    config = settings(url, None, console=True)
    config = settings(url, None, console=True, console_users={**config.console_users, **users})
    app = await start_app(config)
    assert app.conversations is not None
    service, engine = app.conversations, app.engine
    console = app.platforms["console"]
    edited: dict[int, asyncio.Future[float]] = {}
    edit = console.store.edit  # type: ignore[attr-defined]

    async def timed_edit(message_id: int, card: Any, now: float) -> Any:
        msg = await edit(message_id, card, now)  # returns after its transaction committed
        waiting = edited.pop(message_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(time.perf_counter())
        return msg

    console.store.edit = timed_edit  # type: ignore[attr-defined]

    async def idle() -> None:
        """Until the outbox has delivered everything (and a card's edit interval has passed)."""
        pending_cards = chat_cards.c.version > chat_cards.c.sent_version
        pending_posts = chat_posts.c.status.in_(("pending", "sending"))
        async with asyncio.timeout(120):
            while True:
                async with engine.connect() as conn:
                    cards = (await conn.execute(sa.select(sa.func.count()).where(pending_cards))).scalar_one()
                    posts = (await conn.execute(sa.select(sa.func.count()).where(pending_posts))).scalar_one()
                if not cards and not posts:
                    return
                await asyncio.sleep(0.05)

    try:
        await register_agents(service)
        warm = await queue_up(service, 10_000, 5)
        ids = await queue_up(service, 0, claims)
        await idle()
        await asyncio.sleep(config.card_update_interval + 0.2)
        for n, conv_id in enumerate(warm):
            await service.desk.claim(conv_id, AGENTS[n % len(AGENTS)])
        await idle()

        async def measured() -> tuple[list[float], list[float]]:
            answered, shown = [], []
            for n, conv_id in enumerate(ids):
                async with engine.connect() as conn:
                    ref = (
                        await conn.execute(
                            sa.select(chat_cards.c.message_ref).where(
                                chat_cards.c.key == f"conversation:{conv_id}"
                            )
                        )
                    ).scalar_one()
                future = edited[int(ref)] = asyncio.get_running_loop().create_future()
                t0 = time.perf_counter()
                answer = await service.desk.claim(conv_id, AGENTS[n % len(AGENTS)])
                answered.append(time.perf_counter() - t0)
                assert answer.startswith("You have claimed"), answer
                shown.append(await asyncio.wait_for(future, 30) - t0)
                # The claim's thread post and the user's notice too: the next claim meets a quiet bot.
                await idle()
            return answered, shown

        answered, shown = await profiled(profile, "claim (console)", measured)
    finally:
        await stop_app(app)
    ms = [t * 1000 for t in shown]
    ack = [t * 1000 for t in answered]
    p95 = pct(ms, 0.95)
    return [
        (
            f"claim -> console message edited ({len(ms)}): p50 / p95",
            f"{statistics.median(ms):.1f} / {p95:.1f} ms",
            "p95 <= 100 ms",
            "ok" if p95 <= 100 else "MISSED",
        ),
        (
            "  desk.claim returned: p50 / p95",
            f"{statistics.median(ack):.1f} / {pct(ack, 0.95):.1f} ms",
            "",
            "",
        ),
    ]


# -- the table -------------------------------------------------------------------------------------


def table(kind: str, rows: list[Row]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    head = ("figure", "value", "target", "")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = [f"[{kind}]", "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", default=["turn", "burst", "claim"])
    parser.add_argument("--pg", action="store_true", help="also on PostgreSQL (after SQLite)")
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--profile", action="store_true", help="cProfile the measured part of each figure")
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    if args.figures == ["_fake"]:
        serve_fake()
        return
    kinds = args.db or (["sqlite", "postgres"] if args.pg else ["sqlite"])
    with FakeLLM() as fake:
        for kind in kinds:
            rows: list[Row] = []
            for figure in args.figures:
                url = fresh_url(kind)
                try:
                    if figure == "turn":
                        rows += asyncio.run(bench_turn(url, fake.base_url, profile=args.profile))
                    elif figure == "burst":
                        rows += asyncio.run(bench_burst(url, fake.base_url, args.burst, profile=args.profile))
                    elif figure == "claim":
                        rows += asyncio.run(bench_claim_row(url, profile=args.profile))
                        drop(url)
                        url = fresh_url(kind)
                        rows += asyncio.run(bench_claim_console(url, profile=args.profile))
                    else:
                        raise SystemExit(f"unknown figure {figure!r}")
                finally:
                    drop(url)
            print(table(kind, rows), flush=True)


if __name__ == "__main__":
    main()
