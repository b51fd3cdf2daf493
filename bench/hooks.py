"""Inbound webhooks: how long a signed GitHub-style delivery takes to be answered 202 (its run stored and
started), sequentially and 10 at a time, on SQLite or PostgreSQL.

    python bench/webhooks.py                       # 200 deliveries on SQLite
    python bench/webhooks.py --requests 500 --postgres

It prints p50, p95 and max of the answer time, and the load average beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.process import start_app, stop_app  # noqa: E402
from bot.triggers.signatures import sign_github  # noqa: E402

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret"
HOOKED = """
name: hooked
inputs:
  service: {type: string, required: true}
on:
  webhook: {name: bench, secret_env: BENCH_HOOK_SECRET, signature: github,
            inputs: {service: "${{ event.repository.name }}"}}
steps:
  done: {notify: "pushed ${{ inputs.service }}"}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def deliver(session: aiohttp.ClientSession, url: str) -> float:
    body = json.dumps({"repository": {"name": "api"}}).encode()
    headers = {"X-Hub-Signature-256": sign_github(SECRET, body), "X-GitHub-Delivery": str(uuid.uuid4())}
    began = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        assert response.status == 202, await response.text()
    return time.perf_counter() - began


async def main(requests: int, postgres: bool) -> None:
    os.environ["BENCH_HOOK_SECRET"] = SECRET
    folder = Path(tempfile.mkdtemp())
    (folder / "workflows").mkdir()
    (folder / "workflows" / "hooked.yaml").write_text(HOOKED)
    schema = f"b_{secrets.token_hex(4)}"
    if postgres:
        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        url = PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1) + f"?schema={schema}"
    else:
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    app = await start_app(
        Settings(database_url=url, workflows_dir=folder / "workflows", port=0, console=False)
    )
    try:
        async with aiohttp.ClientSession() as session:
            hook = f"{app.url}/hooks/bench"
            await deliver(session, hook)  # warm up
            serial = [await deliver(session, hook) for _ in range(requests)]
            together: list[float] = []
            for _ in range(requests // 10):
                together += await asyncio.gather(*(deliver(session, hook) for _ in range(10)))
    finally:
        await stop_app(app, grace=2.0, flush=1.0)
        if postgres:
            conn = await asyncpg.connect(PG_DSN)
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()
    for label, values in (("one at a time", serial), ("10 at a time", together)):
        print(
            f"{label:>14}: {len(values)} deliveries, answer p50 {pct(values, 0.5) * 1000:.1f} ms, "
            f"p95 {pct(values, 0.95) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
        )
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.postgres))
