"""Engine benchmarks: prints figures for no-op steps with durable state (SQLite, and PostgreSQL).

    python bench/engine.py            # everything
    python bench/engine.py chain fanout --db sqlite

Figures (targets from the engine issue):
  chain     200 sequential no-op action steps: overhead per step, p50 (target <= 1.0 ms on SQLite)
  fanout    1,000-item fan-out at concurrency 50: steps/s (target >= 3,000 on SQLite)
  runs      100 concurrent runs of a 10-step chain: runs/s and steps/s
  resume    kill -9 mid-run, then `workflow resume --all`: process start to first resumed step (<= 1.0 s)
  waiting   10,000 runs waiting on approvals: start-to-ready time and RSS of a fresh process (<= 3 s, 200 MB)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_db import fresh_url  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.runtime.runtime import Runtime  # noqa: E402
from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from engine.loader import load_text  # noqa: E402

NOOP = "examples.actions:noop"


def chain_yaml(n: int, name: str = "chain") -> str:
    lines = [f"name: {name}", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  s{i}: {{action: {NOOP}{needs}}}")
    return "\n".join(lines) + "\n"


FANOUT = f"""
name: fanout
concurrency: 50
steps:
  each:
    for_each: "${{{{ range_list }}}}"
    action: {NOOP}
"""


async def open_runtime(url: str, **overrides: Any) -> Runtime:
    settings = Settings(database_url=url, workflows_dir=ROOT / "workflows", **overrides)
    engine = create_engine(settings.database_url)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine))
    await runtime.start(resume=False)
    return runtime


async def close(runtime: Runtime) -> None:
    await runtime.stop()
    await runtime.store.engine.dispose()


async def run_to_end(runtime: Runtime, text: str, inputs: dict[str, Any] | None = None) -> str:
    loaded = load_text(text, "bench.yaml")
    with runtime.hub.subscribe() as queue:
        started = await runtime.submit(loaded, inputs or {}, "bench")
        while True:
            event = await queue.get()
            if event.run_id == started.run_id and event.type == "run_finished":
                assert event.data["status"] == "succeeded", event.data
                return started.run_id


async def bench_chain(url: str) -> str:
    runtime = await open_runtime(url)
    try:
        await run_to_end(runtime, chain_yaml(20))  # warm up imports and caches
        run_id = await run_to_end(runtime, chain_yaml(200))
        starts = [
            e.at for e in await runtime.store.events_after(run_id, 0, 10_000) if e.type == "step_started"
        ]
        gaps = sorted(b - a for a, b in itertools.pairwise(starts))
        p50 = statistics.median(gaps) * 1000
        p95 = gaps[int(len(gaps) * 0.95)] * 1000
        total = (starts[-1] - starts[0]) * 1000 / (len(starts) - 1)
        return f"chain 200 steps: per-step overhead p50 {p50:.2f} ms, p95 {p95:.2f} ms, mean {total:.2f} ms"
    finally:
        await close(runtime)


async def bench_fanout(url: str) -> str:
    runtime = await open_runtime(url, max_parallel_steps=64)
    try:
        text = FANOUT.replace("range_list", "range_list")
        loaded_text = text.replace("${{ range_list }}", "${{ inputs.items }}")
        loaded_text = loaded_text.replace("steps:", "inputs: {items: {type: list}}\nsteps:", 1)
        await run_to_end(runtime, loaded_text, {"items": list(range(100))})
        t0 = time.perf_counter()
        await run_to_end(runtime, loaded_text, {"items": list(range(1000))})
        elapsed = time.perf_counter() - t0
        return f"fan-out 1,000 items, concurrency 50: {1000 / elapsed:,.0f} steps/s ({elapsed:.2f} s)"
    finally:
        await close(runtime)


async def bench_runs(url: str) -> str:
    runtime = await open_runtime(url, max_parallel_steps=200)
    try:
        loaded = load_text(chain_yaml(10, "ten"), "ten.yaml")
        await run_to_end(runtime, chain_yaml(10, "ten"))
        with runtime.hub.subscribe() as queue:
            t0 = time.perf_counter()
            for _ in range(100):
                await runtime.submit(loaded, {}, "bench")
            done = 0
            while done < 100:
                event = await queue.get()
                done += event.type == "run_finished"
            elapsed = time.perf_counter() - t0
        return f"100 concurrent runs x 10 steps: {100 / elapsed:,.1f} runs/s, {1000 / elapsed:,.0f} steps/s ({elapsed:.2f} s)"
    finally:
        await close(runtime)


def bench_resume(url: str) -> str:
    work = Path(tempfile.mkdtemp(prefix="sb-resume-"))
    log = work / "log"
    (work / "crash.yaml").write_text(f"""
name: crash
steps:
  first: {{run: ["sh", "-c", "echo first >> {log}"]}}
  slow:
    needs: [first]
    run: ["sh", "-c", "echo slow $(date +%s.%N) $SWITCHBOARD_ATTEMPT >> {log}; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 60; true"]
""")
    env = {**os.environ, "DATABASE_URL": url, "SWITCHBOARD_WORKFLOWS_DIR": str(work), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "workflow", "run", "crash"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while not (log.exists() and "slow" in log.read_text()):
        if time.time() > deadline:
            raise RuntimeError("the run never reached its slow step")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    resumed = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "workflow", "resume", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    second = [ln for ln in log.read_text().splitlines() if ln.startswith("slow") and ln.endswith(" 2")]
    first_step_at = float(second[0].split()[1])
    return f"kill -9 then resume: process start to first resumed step {first_step_at - t0:.2f} s"


async def seed_waiting(url: str, count: int) -> None:
    runtime = await open_runtime(url)
    text = "name: gate\nsteps:\n  ask: {approval: {title: 'ok?', timeout: 24h}}\n"
    loaded = load_text(text, "gate.yaml")
    try:
        sem = asyncio.Semaphore(50)

        async def one() -> None:
            async with sem:
                await runtime.submit(loaded, {}, "bench")

        await asyncio.gather(*(one() for _ in range(count)))
        async with asyncio.timeout(120):
            while runtime.live:
                await asyncio.sleep(0.1)
    finally:
        await close(runtime)


def bench_waiting(url: str, count: int = 10_000) -> str:
    asyncio.run(seed_waiting(url, count))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    spawned = time.time()
    probe = subprocess.run(
        [sys.executable, str(Path(__file__)), "_load_probe", "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ready_at, rss, pending = probe.stdout.split()
    return (
        f"{count:,} runs waiting on approvals: process start to ready {float(ready_at) - spawned:.2f} s, "
        f"peak RSS {rss} MB ({int(pending):,} pending approvals)"
    )


def load_probe(url: str) -> None:
    """Runs in a fresh process: start a runtime on a database full of waiting runs; print when it was
    ready (epoch seconds), its peak RSS in MB and how many approvals are pending."""

    async def go() -> tuple[float, int]:
        runtime = await open_runtime(url)
        await runtime.resume_all()
        ready_at = time.time()
        pending = len(await runtime.approvals.pending())
        await close(runtime)
        return ready_at, pending

    ready_at, pending = asyncio.run(go())
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) // 1024
    print(f"{ready_at} {rss} {pending}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", default=["chain", "fanout", "runs", "resume", "waiting"])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--url")
    parser.add_argument("--waiting", type=int, default=10_000)
    args = parser.parse_args()
    if args.figures == ["_load_probe"]:
        load_probe(args.url)
        return
    for kind in args.db or ["sqlite", "postgres"]:
        for figure in args.figures:
            url = fresh_url(kind)
            if figure == "chain":
                line = asyncio.run(bench_chain(url))
            elif figure == "fanout":
                line = asyncio.run(bench_fanout(url))
            elif figure == "runs":
                line = asyncio.run(bench_runs(url))
            elif figure == "resume":
                line = bench_resume(url)
            elif figure == "waiting":
                line = bench_waiting(url, args.waiting)
            else:
                raise SystemExit(f"unknown figure {figure!r}")
            print(f"[{kind:8}] {line}", flush=True)


if __name__ == "__main__":
    main()
