"""Background steps in real runs: through the runtime with chat cards, and across a kill -9 of the process.

Steps append to a log file, so the assertions count exactly which steps ran and how often.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from tests.helpers import finished, workflow
from tests.test_crash import appender, kill_then_resume, lines

RUN = """
name: bg
steps:
  warm:
    background: true
    timeout: 1s
    run: ["sleep", "30"]
  ping:
    background: true
    timeout: 1m
    run: ["sh", "-c", "echo ping refused >&2; exit 3"]
  deploy:
    needs: [warm, ping]
    run: ["echo", "deployed"]
"""


async def _rows(runtime: Runtime, table: str) -> list[dict[str, Any]]:
    async with runtime.store.engine.connect() as conn:
        result = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))  # a name from the schema
        return [dict(r._mapping) for r in result]


def _card(row: dict[str, Any]) -> Any:
    return json.loads(row["card"]) if isinstance(row["card"], str) else row["card"]  # SQLite gives text


async def test_background_failures_are_reported_but_the_run_succeeds(runtime: Runtime) -> None:
    install(runtime)  # status cards and thread replies, as the bot has them
    origin = {"platform": "console", "channel": "#ops", "thread": None, "channel_name": "ops"}
    started = await runtime.submit(workflow(RUN), {}, "alice", meta={"origin": origin})
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded", row.error
    steps = {s.key: s for s in await runtime.store.step_rows(started.run_id)}
    assert steps["deploy"].status == "succeeded"
    assert steps["warm"].status == "failed" and steps["warm"].error == "timed out after 1.0s"
    assert steps["ping"].status == "failed" and steps["ping"].tolerated
    events = await runtime.store.events_after(started.run_id, 0)
    order = [(e.type, e.step_key) for e in events]
    # deploy did not wait for warm: it finished first, and the run's end waited for warm's timeout
    assert order.index(("step_succeeded", "deploy")) < order.index(("step_failed", "warm"))
    assert order[-1] == ("run_finished", None)
    [card] = [c for c in await _rows(runtime, "chat_cards") if c["key"] == f"run:{started.run_id}"]
    text = json.dumps(_card(card), ensure_ascii=False)
    assert "Background steps warm, ping failed; the run went on." in text
    assert "background, did not fail the run" in text
    posts = [json.dumps(_card(p), ensure_ascii=False) for p in await _rows(runtime, "chat_posts")]
    assert any("*ping* failed in the background (the run goes on): exited with" in p for p in posts), posts
    assert any("*warm* failed in the background (the run goes on): timed out" in p for p in posts), posts


async def test_a_background_step_killed_mid_flight_runs_again_and_nothing_else_does(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    slow = f"; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 60; echo warm-end >> {log}"
    (tmp_path / "w.yaml").write_text(f"""
name: w
steps:
  warm: {{background: true, timeout: 2m, run: {appender(log, "warm-start", slow)}}}
  deploy: {{needs: [warm], run: {appender(log, "deploy")}}}
""")

    async def deployed_while_warming(store: RunStore) -> bool:
        rows = await store.list_runs()
        if not rows:
            return False
        steps = {s.key: s.status for s in await store.step_rows(rows[0].id)}
        return steps.get("deploy") == "succeeded" and "warm-start" in lines(log)

    run_id, _ = await kill_then_resume(db_url, tmp_path, "w", deployed_while_warming)
    seen = lines(log)
    assert seen.count("deploy") == 1 and seen.count("warm-start") == 2 and seen.count("warm-end") == 1
    engine = create_engine(db_url)
    steps = {s.key: (s.status, s.attempt) for s in await RunStore(engine).step_rows(run_id)}
    await engine.dispose()
    assert steps == {"warm": ("succeeded", 2), "deploy": ("succeeded", 1)}
