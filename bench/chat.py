"""Chat benchmarks: prints figures for Slack over HTTP, with the bot in its own process.

    python bench/chat.py                 # everything
    python bench/chat.py ack --rate 200 --seconds 5

The bot runs as `switchboard run` (python -m bot.cli.main run) with Slack configured against a fake Slack
Web API (tests/fakes/slack_api.py) served by this process, which also sends the signed requests
(tests/fakes/slack_sender.py) over localhost HTTP, as Slack would. BENCH_LOG_LEVEL=INFO shows the bot's log.

Figures (targets from the chat-layer issue):
  ack    signed slash commands at 200/s (`/workflow help`, plus a few `run`s): HTTP answer latency
         p50 and p99 (target p99 <= 50 ms). The requests are sent on schedule (open loop) by a load
         process of its own, so that sending them and serving the bot's calls to the fake Slack API do
         not share one event loop (`--load-here` sends them from this process, as before); how late
         the sends were is printed beside the figure, and so is the bot's CPU time a command
  card   slash command -> first status card received by the fake Slack API, idle (target p50 <= 100 ms)
  edits  chat.update calls for one card during a 50-step run (target <= 1 per second)
  console
         the local console's /api/command at 300/s (`/workflow help` from five signed-in users in
         dev mode, plus a few `run`s), over HTTP: answer latency p50 and p99 (target p99 <= 100 ms)
         and the bot's CPU time a command; `--rate` sets the rate here too when given. Both figures
         warm up with a run and a few commands first, unmeasured
  chat-vs-cli
         a 500-step chain of no-op steps started from chat (a run with a chat origin, so its status card
         and thread are written with its commits) against the same chain started from the CLI, in one
         process on SQLite, alternating: ms per step of each, their ratio (target <= 1.3), and the step
         gap p50 over the first and the last 10% of steps (flat per-step cost); and, for comparison, the
         chat side with the card drawn on every commit (card interval 0, as before the card was drawn
         at most once per interval). No bot process: the runtime and its chat presence only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_sender import SlackSender  # noqa: E402

QUICK = """
name: quick
steps:
  one: {action: examples.actions:noop}
  two: {action: examples.actions:noop, needs: [one]}
"""


def fifty_steps() -> str:
    lines = ["name: fifty", "steps:"]
    for i in range(50):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f'  s{i}: {{run: ["sleep", "0.1"]{needs}}}')
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Bot:
    """`switchboard run` in a child process, talking to ``fake``."""

    def __init__(self, fake: FakeSlack | None, work: Path) -> None:
        """With ``fake``, Slack against it and no console; with None, the local console only."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        flows = work / "workflows"
        flows.mkdir()
        (flows / "examples").symlink_to(ROOT / "workflows" / "examples")  # the no-op action
        (flows / "quick.yaml").write_text(QUICK)
        (flows / "fifty.yaml").write_text(fifty_steps())
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SWITCHBOARD_", "DISCORD_"))
        }
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{work / 'bench.db'}",
            SWITCHBOARD_WORKFLOWS_DIR=str(flows),
            PORT=str(self.port),
            SWITCHBOARD_CONSOLE="false" if fake else "true",
            SWITCHBOARD_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )
        if fake is not None:
            env.update(
                SLACK_BOT_TOKEN=fake.token,
                SLACK_SIGNING_SECRET=fake.signing_secret,
                SWITCHBOARD_SLACK_API_URL=fake.base_url,
            )
        env.pop("REDIS_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )

    async def ready(self, timeout: float = 30.0) -> None:
        async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
            while True:
                try:
                    async with session.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        # Wait without blocking the loop: the fake Slack API lives on it, and the bot flushes to it.
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def wait_for(probe: Any, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := probe()):
            await asyncio.sleep(0.005)
    return value


def ack_plan(total: int) -> list[tuple[str, str]]:
    """The ack figure's commands in order: `/workflow help` in #ops, and ten `run`s spread over the load."""
    plan = []
    for i in range(total):
        runs = i % (total // 10) == 0
        plan.append(("run quick", f"C0LOAD{i // (total // 10)}") if runs else ("help", "C0OPS"))
    return plan


async def bench_ack(
    fake: FakeSlack, send: SlackSender, rate: float, seconds: float, pid: int, in_process: bool = False
) -> str:
    total = int(rate * seconds)
    for i in range(10):
        fake.channels[f"C0LOAD{i}"] = f"load-{i}"
    fake.channels["C0WARM"] = "warm"
    await send.command("run quick", channel="C0WARM")  # the first run's imports and caches, unmeasured
    await asyncio.gather(*(send.command("help") for _ in range(20)))  # warm up connections and caches
    await asyncio.sleep(0.5)
    plan = ack_plan(total)
    cpu = cpu_seconds(pid)
    if in_process:
        latencies, late, failures = await _ack_here(send, plan, rate)
        where = "sent from this process, which also serves the fake Slack API"
    else:
        latencies, late, failures = await _ack_elsewhere(fake, send, plan, rate)
        where = "sent by a load process of its own"
    cpu = cpu_seconds(pid) - cpu
    return (
        f"ack: {total} signed slash commands at {rate:.0f}/s over HTTP ({where}; open loop, sent "
        f"late p99 {pct(late, 0.99):.1f} ms): p50 {statistics.median(latencies):.1f} ms, p99 "
        f"{pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms, non-200 {failures}; the bot used "
        f"{cpu / total * 1000:.2f} ms of CPU a command (target p99 <= 50 ms; load average "
        f"{os.getloadavg()[0]:.1f})"
    )


async def _ack_here(
    send: SlackSender, plan: list[tuple[str, str]], rate: float
) -> tuple[list[float], list[float], int]:
    latencies: list[float] = []
    late: list[float] = []
    failures = 0

    async def one(text: str, channel: str) -> None:
        nonlocal failures
        answer = await send.command(text, channel=channel)
        failures += answer.status != 200
        latencies.append(answer.elapsed * 1000)

    start = time.perf_counter()
    tasks = []
    for i, (text, channel) in enumerate(plan):  # open loop: send on schedule, whatever the answers do
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(max(0.0, time.perf_counter() - due) * 1000)
        tasks.append(asyncio.create_task(one(text, channel)))
    await asyncio.gather(*tasks)
    return latencies, late, failures


async def _ack_elsewhere(
    fake: FakeSlack, send: SlackSender, plan: list[tuple[str, str]], rate: float
) -> tuple[list[float], list[float], int]:
    """The same requests sent by a child process (``_load``), so that sending them and serving the
    bot's calls to the fake Slack API do not share one event loop and one core."""
    bodies = [send.command_body(text, channel=channel).decode() for text, channel in plan]
    with tempfile.TemporaryDirectory(prefix="sb-ack-load-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(
            json.dumps({"url": send.url, "secret": fake.signing_secret, "rate": rate, "bodies": bodies})
        )
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "_load", str(job), str(out))
        if await proc.wait() != 0:
            raise SystemExit("the load process failed")
        done = json.loads(out.read_text())
    return done["latencies"], done["late"], done["failures"]


async def load_process(job_path: str, out_path: str) -> None:
    """``_load JOB OUT``: send JOB's signed form bodies to its URL at its rate, open loop, one session."""
    from slack_sdk.signature import SignatureVerifier

    job = json.loads(Path(job_path).read_text())
    verifier = SignatureVerifier(job["secret"])
    rate = float(job["rate"])
    latencies: list[float] = []
    late: list[float] = []
    failures = 0
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes) -> None:
            nonlocal failures
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp, body=body)),
            }
            t0 = time.perf_counter()
            async with session.post(job["url"], data=body, headers=headers) as resp:
                await resp.read()
                failures += resp.status != 200
            latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        tasks = []
        for i, text in enumerate(job["bodies"]):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late.append(max(0.0, time.perf_counter() - due) * 1000)
            tasks.append(asyncio.create_task(one(text.encode())))
        await asyncio.gather(*tasks)
    Path(out_path).write_text(json.dumps({"latencies": latencies, "late": late, "failures": failures}))


async def bench_console(url: str, rate: float, seconds: float, pid: int) -> str:
    users = ["alice", "bob", "carol", "dave", "erin"]
    sessions: list[tuple[aiohttp.ClientSession, str]] = []
    for user in users:  # each signs in through dev mode's picker, as the page does
        session = aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with session.post("/auth/dev", json={"user": user}) as res:
            assert res.status == 200, await res.text()
        async with session.get("/api/state") as res:
            sessions.append((session, (await res.json())["csrf"]))
    total = int(rate * seconds)
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        session, csrf = sessions[i % len(sessions)]
        text = "/workflow run quick" if i % (total // 10 or 1) == 0 else "/workflow help"
        t0 = time.perf_counter()
        body = {"channel": "ops", "text": text}
        async with session.post("/api/command", json=body, headers={"X-CSRF-Token": csrf}) as res:
            await res.read()
            failures += res.status != 200
        latencies.append((time.perf_counter() - t0) * 1000)

    try:
        await one(0)  # a run first: its imports and caches, unmeasured
        await asyncio.gather(*(one(1 + i) for i in range(20)))  # warm up connections and caches
        await asyncio.sleep(0.5)
        latencies.clear()
        cpu = cpu_seconds(pid)
        start = time.perf_counter()
        tasks = []
        for i in range(total):  # open loop, as bench_ack
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        sent_rate = total / (time.perf_counter() - start)
        cpu = cpu_seconds(pid) - cpu
    finally:
        for session, _ in sessions:
            await session.close()
    return (
        f"console: {total} /api/command requests at {sent_rate:.0f}/s over HTTP: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms, non-200 {failures}; the bot used {cpu / total * 1000:.2f} ms of CPU "
        f"a command (target p99 <= 100 ms)"
    )


async def bench_card(fake: FakeSlack, send: SlackSender, samples: int = 20) -> str:
    delays = []
    for i in range(samples):
        channel = f"C0CARD{i:02d}"  # its own channel, so per-channel pacing does not add a wait
        fake.channels[channel] = f"card-{i}"
        t0 = time.monotonic()
        await send.command("run quick", channel=channel)
        post = await wait_for(
            lambda ch=channel: [
                c
                for c in fake.delivered("chat.postMessage")
                if c.params["channel"] == ch and c.params.get("metadata")
            ]
        )
        delays.append((post[0].at - t0) * 1000)
        await asyncio.sleep(0.2)
    return (
        f"card: slash command -> first status card at the fake Slack API, {samples} runs: "
        f"p50 {statistics.median(delays):.1f} ms, p90 {pct(delays, 0.9):.1f} ms (target p50 <= 100 ms)"
    )


async def bench_edits(fake: FakeSlack, send: SlackSender) -> str:
    fake.channels["C0FIFTY"] = "fifty"
    await send.command("run fifty", channel="C0FIFTY")
    post = (
        await wait_for(
            lambda: [c for c in fake.delivered("chat.postMessage") if c.params["channel"] == "C0FIFTY"]
        )
    )[0]
    ts = post.answer["ts"]
    await wait_for(lambda: "succeeded" in fake.message("C0FIFTY", ts)["text"], timeout=60)
    await wait_for(  # and the thread's last reply, so the bot stops with nothing left to send
        lambda: any(
            "Run succeeded" in m["text"] for m in fake.channel_messages("C0FIFTY") if m.get("thread_ts") == ts
        )
    )
    edits = [c.at for c in fake.delivered("chat.update") if c.params["ts"] == ts]
    times = [post.at, *edits]
    span = times[-1] - times[0]
    window = max(sum(1 for t in edits if s <= t < s + 1.0) for s in edits)
    gap = min((b - a for a, b in itertools.pairwise(times)), default=0.0)
    return (
        f"edits: 50-step run ({span:.1f} s from post to last edit): {len(edits)} chat.update calls, "
        f"{len(edits) / max(span, 1e-9):.2f}/s, at most {window} in any 1 s, shortest gap {gap:.2f} s "
        f"(target <= 1 per second)"
    )


CHAIN = 500


def chain_yaml(n: int) -> str:
    lines = ["name: chain", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  s{i}: {{action: examples.actions:noop{needs}}}")
    return "\n".join(lines) + "\n"


async def chain_gaps(url: str, loaded: Any, chat: bool, interval: float) -> list[float]:
    """The gaps between the step starts of one chain run (chat-started when ``chat``), in seconds."""
    from bot.config import Settings
    from bot.runtime.presence import install
    from bot.runtime.runtime import Runtime
    from bot.storage.database import create_engine, migrate
    from bot.storage.runs import RunStore

    settings = Settings(database_url=url, workflows_dir=ROOT / "workflows", card_update_interval=interval)
    engine = create_engine(url)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine))
    install(runtime)
    await runtime.start(resume=False)
    meta: dict[str, Any] = {"source": "cli"}
    if chat:
        meta = {
            "origin": {"platform": "slack", "channel": "C0BENCH", "thread": None},
            "who": {"platform": "slack", "id": "U0ALICE", "name": "alice"},
        }
    try:
        with runtime.hub.subscribe() as queue:
            started = await runtime.submit(loaded, {}, "bench", meta=meta)
            while True:
                event = await queue.get()
                if event.run_id == started.run_id and event.type == "run_finished":
                    assert event.data["status"] == "succeeded", event.data
                    break
        events = await runtime.store.events_after(started.run_id, 0, 100_000)
        starts = [e.at for e in events if e.type == "step_started"]
        return [b - a for a, b in itertools.pairwise(starts)]
    finally:
        await runtime.stop()
        await engine.dispose()


async def bench_chat_vs_cli(rounds: int = 5) -> list[str]:
    from engine.loader import load_text

    loaded = load_text(chain_yaml(CHAIN), "chain.yaml")
    sides: dict[str, list[list[float]]] = {"cli": [], "chat": [], "chat, card on every commit": []}
    with tempfile.TemporaryDirectory(prefix="sb-chat-vs-cli-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await chain_gaps(url, loaded, chat=True, interval=1.0)  # warm up imports, caches and the file
        for _ in range(rounds):  # alternate, so a change in the machine's load touches every side
            sides["cli"].append(await chain_gaps(url, loaded, chat=False, interval=1.0))
            sides["chat"].append(await chain_gaps(url, loaded, chat=True, interval=1.0))
            sides["chat, card on every commit"].append(await chain_gaps(url, loaded, chat=True, interval=0.0))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mean = {name: statistics.median(sum(g) / len(g) for g in runs) * 1000 for name, runs in sides.items()}
    lines = []
    tenth = (CHAIN - 1) // 10
    for name, runs in sides.items():
        first = statistics.median(statistics.median(g[:tenth]) for g in runs) * 1000
        last = statistics.median(statistics.median(g[-tenth:]) for g in runs) * 1000
        lines.append(
            f"chat-vs-cli: {CHAIN}-step chain, {name}: {mean[name]:.2f} ms a step "
            f"(gap p50 {first:.2f} ms over the first 10% of steps, {last:.2f} ms over the last 10%)"
        )
    lines.append(
        f"chat-vs-cli: chat / cli = {mean['chat'] / mean['cli']:.2f} (target <= 1.3); card on every commit / cli "
        f"= {mean['chat, card on every commit'] / mean['cli']:.2f}  ({rounds} rounds each, median; "
        f"load average {load})"
    )
    return lines


async def main_async(
    figures: list[str],
    rate: float,
    seconds: float,
    console_rate: float | None = None,
    load_here: bool = False,
) -> None:
    if "chat-vs-cli" in figures:
        for line in await bench_chat_vs_cli():
            print(f"[runtime ] {line}", flush=True)
        figures = [f for f in figures if f != "chat-vs-cli"]
    if "console" in figures:
        with tempfile.TemporaryDirectory(prefix="sb-console-bench-") as tmp:
            bot = Bot(None, Path(tmp))
            try:
                await bot.ready()
                line = await bench_console(bot.url, console_rate or 300.0, seconds, bot.proc.pid)
                print(f"[console ] {line}  (load average {os.getloadavg()[0]:.1f})", flush=True)
            finally:
                await bot.stop()
        figures = [f for f in figures if f != "console"]
    if not figures:
        return
    with tempfile.TemporaryDirectory(prefix="sb-chat-bench-") as tmp:
        async with FakeSlack() as fake:
            fake.add_user("U0ALICE", "alice", groups=("release-managers",))
            bot = Bot(fake, Path(tmp))
            send = SlackSender(fake, f"{bot.url}/slack/events")
            try:
                await bot.ready()
                for figure in figures:
                    if figure == "ack":
                        line = await bench_ack(fake, send, rate, seconds, bot.proc.pid, in_process=load_here)
                    elif figure == "card":
                        line = await bench_card(fake, send)
                    elif figure == "edits":
                        line = await bench_edits(fake, send)
                    else:
                        raise SystemExit(f"unknown figure {figure!r}")
                    print(f"[slack   ] {line}", flush=True)
                    await asyncio.sleep(1.0)  # let the previous figure's replies drain
            finally:
                await send.close()
                await bot.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", default=["ack", "card", "edits", "chat-vs-cli", "console"])
    parser.add_argument("--rate", type=float, help="requests per second (ack: 200, console: 300)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long `ack` and `console` send for")
    parser.add_argument(
        "--load-here",
        action="store_true",
        help="ack: send from this process, beside the fake Slack API (as before), not from a load process",
    )
    if sys.argv[1:2] == ["_load"]:  # the ack figure's load process
        asyncio.run(load_process(sys.argv[2], sys.argv[3]))
        return
    args = parser.parse_args()
    asyncio.run(main_async(args.figures, args.rate or 200.0, args.seconds, args.rate, args.load_here))


if __name__ == "__main__":
    main()
