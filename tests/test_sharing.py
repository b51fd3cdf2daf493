"""Several `switchboard run` processes sharing the work on PostgreSQL: runs claimed in batches and told by
NOTIFY, each done exactly once; a process's capacity (SWITCHBOARD_MAX_RUNS); a timer of a killed process
fired by the other; an exclusion group admitting one run at a time across processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from bot.storage.tables import runs
from engine.loader import LoadedWorkflow
from tests.bot_process import Bot
from tests.helpers import eventually, status_is, workflow

# Processes share a database on PostgreSQL (SQLite is one process per file).
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture
def pg_url(db_url: str) -> str:
    assert db_url.startswith("postgresql"), "a test of several processes runs on PostgreSQL only (ON_POSTGRES)"
    return db_url


@pytest.fixture
async def client(settings_for: Callable[..., Settings], pg_url: str) -> AsyncIterator[Runtime]:
    """A client that stores runs unclaimed (``--detach``) and drives none: the bots share them."""
    settings = settings_for()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine), scope=set())
    await runtime.start(resume=False)
    yield runtime
    await runtime.stop(grace=0.1)
    await engine.dispose()


def logging_step(log: Path, hold: str = "0") -> str:
    """A step that logs 'start|end <run id> <bot pid> <attempt>' around a pause of ``hold`` seconds."""
    tag = "$SWITCHBOARD_RUN_ID $PPID $SWITCHBOARD_ATTEMPT"
    return f'["sh", "-c", "echo start {tag} >> {log}; sleep {hold}; echo end {tag} >> {log}"]'


def entries(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
async def bots(pg_url: str, workflows_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start `switchboard run` processes; every one is killed at the end, however the test ends."""
    made: list[Bot] = []

    async def start(count: int, **extra: str) -> list[Bot]:
        started = []
        for _ in range(count):  # one by one: a bot opening connections could take the next one's port
            bot = Bot(pg_url, workflows_dir, **extra)
            made.append(bot)
            await bot.start()
            started.append(bot)
        return started

    yield start
    for bot in made:
        bot.close()


async def submit(client: Runtime, loaded: LoadedWorkflow, count: int, **inputs: Any) -> list[str]:
    return [
        (await client.submit(loaded, dict(inputs), started_by="test", drive=False)).run_id
        for _ in range(count)
    ]


def most_at_once(log: Path, pid: str | None = None) -> int:
    """The highest number of steps running at once (in bot ``pid``, when given), from the log's order."""
    running = top = 0
    for event, _run, who, _attempt in entries(log):
        if pid is not None and who != pid:
            continue
        running += 1 if event == "start" else -1
        top = max(top, running)
    return top


@ON_POSTGRES
async def test_two_processes_share_a_burst_and_do_each_run_exactly_once(
    pg_url: str, workflows_dir: Path, tmp_path: Path, client: Runtime, bots: Callable[..., Any]
) -> None:
    log = tmp_path / "log"
    loaded = workflow(f"name: burst\nsteps:\n  a: {{run: {logging_step(log, '0.3')}}}\n", workflows_dir)
    started = await bots(2, SWITCHBOARD_MAX_RUNS="5")  # neither can take it all
    run_ids = await submit(client, loaded, 30)
    for run_id in run_ids:
        await status_is(client, run_id, "succeeded", timeout=90)
    starts = Counter(e[1] for e in entries(log) if e[0] == "start")
    if starts != Counter(dict.fromkeys(run_ids, 1)):
        for bot in started:
            print(bot.pid, bot.output())
    assert starts == Counter(dict.fromkeys(run_ids, 1))  # every run's step ran once, none twice
    by_bot = Counter(e[2] for e in entries(log) if e[0] == "start")
    assert set(by_bot) == {str(b.pid) for b in started}, by_bot  # both took a share of the burst


@ON_POSTGRES
async def test_a_process_at_capacity_claims_no_more_runs(
    pg_url: str, workflows_dir: Path, tmp_path: Path, client: Runtime, bots: Callable[..., Any]
) -> None:
    log = tmp_path / "log"
    loaded = workflow(f"name: capped\nsteps:\n  a: {{run: {logging_step(log, '0.5')}}}\n", workflows_dir)
    await bots(1, SWITCHBOARD_MAX_RUNS="2")
    run_ids = await submit(client, loaded, 6)
    for run_id in run_ids:
        await status_is(client, run_id, "succeeded", timeout=90)
    assert len([e for e in entries(log) if e[0] == "start"]) == 6
    assert most_at_once(log) == 2  # the rest waited for room, then were claimed


@ON_POSTGRES
async def test_a_timer_of_a_killed_process_fires_on_the_other(
    pg_url: str, workflows_dir: Path, tmp_path: Path, client: Runtime, bots: Callable[..., Any]
) -> None:
    log = tmp_path / "log"
    text = f"""
name: later
steps:
  first: {{run: {logging_step(log)}}}
  pause: {{needs: [first], wait: 4s}}
  last: {{needs: [pause], run: {logging_step(log)}}}
"""
    loaded = workflow(text, workflows_dir)
    started = await bots(2, SWITCHBOARD_LEASE_SECONDS="30")
    [run_id] = await submit(client, loaded, 1)
    await status_is(client, run_id, "waiting", timeout=30)  # parked on its timer
    first = entries(log)[0][2]
    [armed_by] = [b for b in started if str(b.pid) == first]
    [other] = [b for b in started if b is not armed_by]
    armed_by.kill()
    # Fired by the survivor long before the 30 s lease: the timer table is shared, the alarm is its own.
    await status_is(client, run_id, "succeeded", timeout=20)
    assert [e[0] for e in entries(log)] == ["start", "end", "start", "end"]
    assert entries(log)[2][2] == str(other.pid)


@ON_POSTGRES
async def test_an_exclusion_group_admits_one_run_at_a_time_across_processes(
    pg_url: str, workflows_dir: Path, tmp_path: Path, client: Runtime, bots: Callable[..., Any]
) -> None:
    log = tmp_path / "log"
    text = f"""
name: deploy
exclusive: "deploy-${{{{ inputs.env }}}}"
inputs:
  env: {{type: string}}
steps:
  ship: {{run: {logging_step(log, "0.3")}}}
"""
    loaded = workflow(text, workflows_dir)
    await bots(2)
    run_ids = await submit(client, loaded, 5, env="prod")
    for run_id in run_ids:
        await status_is(client, run_id, "succeeded", timeout=90)
    assert most_at_once(log) == 1  # never two prod deploys at once, whichever process ran each
    assert [e[1] for e in entries(log) if e[0] == "start"] == run_ids  # in the order they were started


async def test_runs_of_an_exclusion_group_queue_in_one_process(
    make_runtime: Callable[..., Any], workflows_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    text = f"""
name: deploy
exclusive: "deploy-${{{{ inputs.env }}}}"
inputs:
  env: {{type: string}}
steps:
  ship: {{run: {logging_step(log, "0.2")}}}
"""
    loaded = workflow(text, workflows_dir)
    runtime: Runtime = await make_runtime()
    prod = [(await runtime.submit(loaded, {"env": "prod"}, started_by="t")).run_id for _ in range(3)]
    staging = (await runtime.submit(loaded, {"env": "staging"}, started_by="t")).run_id
    row = await runtime.store.run_row(prod[1])
    assert row is not None and row.status == "pending"  # queued behind the first prod deploy
    for run_id in [*prod, staging]:
        await status_is(runtime, run_id, "succeeded", timeout=30)
    prod_starts = [e[1] for e in entries(log) if e[0] == "start" and e[1] in prod]
    assert prod_starts == prod
    await eventually(lambda: len(entries(log)) == 8, 5, "every step to log")


async def test_a_process_whose_lease_was_taken_stores_and_starts_nothing_more(
    make_runtime: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever made two processes think they drive one run, only the lease holder's commits land: the
    commit checks the lease in its own transaction, so the other stores nothing and starts no step."""
    log = tmp_path / "steps.log"
    loaded = workflow(
        f"""
name: held
steps:
  a: {{run: {logging_step(log, "0.5")}}}
  b: {{needs: [a], run: {logging_step(log)}}}
"""
    )
    runtime: Runtime = await make_runtime()  # 30 s leases, renewed every 10 s: the commit finds out first
    started = await runtime.submit(loaded, {}, started_by="test")
    await eventually(lambda: [e for e in entries(log) if e[0] == "start"], message="step a to start")
    async with runtime.store.engine.begin() as conn:  # another process claims the run meanwhile
        await conn.execute(runs.update().where(runs.c.id == started.run_id).values(lease_owner="elsewhere"))
    await eventually(lambda: started.run_id not in runtime.live, message="the driver to stop")
    events = [e.type for e in await runtime.store.events_after(started.run_id)]
    assert events.count("step_succeeded") == 0  # step a's end was not stored by a process without the lease
    assert [e[0] for e in entries(log)] == ["start", "end"]  # and step b never started here
    assert "lease is held elsewhere" in caplog.text
