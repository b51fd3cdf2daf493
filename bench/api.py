"""REST API benchmark: ``POST /api/v1/runs`` and ``GET /api/v1/runs/ID`` at a fixed rate over real HTTP.

    python bench/api.py                       # SQLite and PostgreSQL, 100 requests a second for 10 s each
    python bench/api.py --db sqlite --rate 100 --seconds 20

The load is open-loop: request i is sent at start + i/rate whatever the earlier ones are doing, and its
latency is counted from that scheduled moment, so a server that falls behind shows it (no coordinated
omission). Each POST starts a run of a one-step workflow (an in-process action, so no program is spawned
per run) with a fresh Idempotency-Key; each GET reads a run the POSTs started. The server is the whole
bot process (``start_app``: console, runtime, outbox) in this process; the client shares its loop and
cores, so the figures are an upper bound. Prints p50, p99 and max per endpoint, errors, and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_db import drop, fresh_url  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.process import start_app, stop_app  # noqa: E402
from bot.storage.tokens import TokenStore  # noqa: E402
from bot.tokens import acting_as, parse_scopes  # noqa: E402

WORKFLOW = """
name: ping
inputs: {n: {type: integer, default: 0}}
steps:
  one: {action: examples.actions:noop}
"""


async def measure(url: str, rate: float, seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-api-"))
    (work / "ping.yaml").write_text(WORKFLOW)
    (work / "examples").symlink_to(ROOT / "workflows" / "examples")
    settings = Settings(database_url=url, workflows_dir=work, port=0, log_level="WARNING")
    app = await start_app(settings)
    try:
        _, token = await TokenStore(app.engine).create(
            "bench", parse_scopes(["runs:read,runs:write"]), acting_as("user:bench"), "bench", time.time()
        )
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(f"{app.url}", headers=headers, connector=connector) as http:
            first = await http.post("/api/v1/runs", json={"workflow": "ping"})
            started = [(await first.json())["id"]]
            posts: list[float] = []
            gets: list[float] = []
            errors: dict[str, int] = {}

            async def one(i: int, due: float) -> None:
                try:
                    if i % 2 == 0:
                        key = {"Idempotency-Key": str(uuid.uuid4())}
                        body = {"workflow": "ping", "inputs": {"n": i}}
                        async with http.post("/api/v1/runs", json=body, headers=key) as r:
                            data = await r.json(content_type=None)
                            ok = r.status == 201
                            if ok:
                                started.append(data["id"])
                            into = posts
                    else:
                        async with http.get(f"/api/v1/runs/{started[-1]}") as r:
                            await r.read()
                            ok = r.status == 200
                            into = gets
                    if not ok:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                    into.append(time.perf_counter() - due)
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

            total = int(rate * seconds)
            t0 = time.perf_counter() + 0.2
            tasks = []
            for i in range(total):
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i, due)))
            await asyncio.gather(*tasks)
            took = time.perf_counter() - t0
    finally:
        await stop_app(app, grace=2.0, flush=2.0)
    kind = url.split(":", 1)[0]
    print(f"{kind}: {total} requests in {took:.1f} s ({total / took:.0f}/s asked {rate:.0f}/s)")
    for name, found in (("POST /api/v1/runs", posts), ("GET  /api/v1/runs/ID", gets)):
        if found:
            print(
                f"  {name}: n={len(found)} p50 {_ms(found, 50)}  p99 {_ms(found, 99)}  max {max(found) * 1000:.1f} ms"
            )
    print(f"  errors: {errors or 'none'}")
    print(f"  load: {Path('/proc/loadavg').read_text().split()[:3]} on {os.cpu_count()} cores")


def _ms(values: list[float], pct: int) -> str:
    ordered = sorted(values)
    if pct == 50:
        return f"{statistics.median(ordered) * 1000:.1f} ms"
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second (half POST, half GET)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for kind in kinds:
        url = fresh_url(kind)
        try:
            asyncio.run(measure(url, args.rate, args.seconds))
        finally:
            drop(url)


if __name__ == "__main__":
    main()
