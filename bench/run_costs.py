"""Cost per run benchmark: how long ``runs_usage`` (the runs' LLM tokens, for ``conversations stats`` and
the dashboard's figures) takes over a period holding many runs.

    python bench/run_costs.py                        # SQLite and PostgreSQL, 10,000 runs
    python bench/run_costs.py --db sqlite --runs 2000

Each run has two ``llm`` steps (a 2 kB answer and its usage) and a ``run`` step (2 kB of stdout), stored
as the runtime stores them; the query reads only ``outputs -> usage``. Prints the median of 5 reads and
the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_db import drop, fresh_url  # noqa: E402
from bot.runtime.costs import runs_usage  # noqa: E402
from bot.storage.database import create_engine, migrate  # noqa: E402
from bot.storage.runs import RunStore  # noqa: E402
from bot.storage.tables import runs, step_runs, workflow_versions  # noqa: E402

FLOW = """name: digest
steps:
  draft: {llm: {prompt: "summarise"}}
  check: {llm: {prompt: "check it"}, needs: [draft]}
  store: {run: [python3, -c, "print(1)"], needs: [check]}
"""
TEXT = "word " * 400  # about 2 kB


async def fill(url: str, count: int) -> None:
    engine = create_engine(url)
    await migrate(engine)
    usage = {"prompt_tokens": 120, "completion_tokens": 400, "total_tokens": 520}
    llm = {"text": TEXT, "json": None, "model": "m", "usage": usage, "finish_reason": "stop"}
    async with engine.begin() as conn:
        await conn.execute(
            workflow_versions.insert().values(
                digest="d1", name="digest", path="digest.yaml", source=FLOW, created_at=0
            )
        )
        for start in range(0, count, 1000):
            ids = [f"r{i:08d}" for i in range(start, min(start + 1000, count))]
            await conn.execute(
                runs.insert(),
                [
                    {
                        "id": rid,
                        "workflow": "digest",
                        "digest": "d1",
                        "status": "succeeded",
                        "inputs": {},
                        "started_by": "console:alice",
                        "meta": {},
                        "cancel_requested": False,
                        "created_at": 1.0,
                        "updated_at": 1.0,
                    }
                    for rid in ids
                ],
            )
            steps = []
            for rid in ids:
                for key, outputs in (
                    ("draft", llm),
                    ("check", llm),
                    ("store", {"stdout": TEXT, "exit_code": 0}),
                ):
                    steps.append(
                        {
                            "run_id": rid,
                            "key": key,
                            "step_id": key,
                            "status": "succeeded",
                            "attempt": 1,
                            "outputs": outputs,
                            "tolerated": False,
                            "finish_seq": 0,
                        }
                    )
            await conn.execute(step_runs.insert(), steps)
    await engine.dispose()


async def measure(url: str, count: int) -> list[float]:
    engine = create_engine(url)
    store = RunStore(engine)
    took = []
    for _ in range(5):
        began = time.perf_counter()
        found = await runs_usage(store, 0.0)
        took.append(time.perf_counter() - began)
        assert found.runs == count and found.with_llm == count and found.total.calls == 2 * count
        assert found.total.prompt_tokens == 240 * count and found.total.completion_tokens == 800 * count
    await engine.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    for kind in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        url = fresh_url(kind)
        try:
            asyncio.run(fill(url, args.runs))
            took = asyncio.run(measure(url, args.runs))
        finally:
            drop(url)
        load = os.getloadavg()[0]
        print(
            f"{kind:<8} {args.runs:,} runs ({3 * args.runs:,} steps): runs_usage median "
            f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms (load {load:.2f})"
        )


if __name__ == "__main__":
    main()
