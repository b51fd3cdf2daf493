"""Schedules fired through the durable timers: with a fake clock, after downtime (run_once and skip), and with
two runtimes on one PostgreSQL database firing each fire once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.storage.schedules import list_schedules
from bot.storage.tables import action_log
from bot.triggers.schedules import Scheduler, fire_run_id, schedule_id
from engine.cron import time_zone
from tests.conftest import FakeClock
from tests.helpers import finished, workflow

MakeRuntime = Callable[..., Awaitable[Runtime]]
BERLIN = time_zone("Europe/Berlin")
START = datetime(2027, 1, 15, 12, 0, tzinfo=BERLIN).timestamp()
FIRST = datetime(2027, 1, 16, 3, 0, tzinfo=BERLIN).timestamp()  # 03:00 Berlin is 02:00 UTC in winter
DAY = 86400.0


def nightly(missed: str = "run_once") -> str:
    return f"""
name: nightly
inputs:
  scope: {{type: string, required: true}}
on:
  schedule:
    - {{cron: "0 3 * * *", timezone: Europe/Berlin, missed: {missed}, inputs: {{scope: all}}}}
steps:
  report: {{notify: "nightly report for ${{{{ inputs.scope }}}}"}}
"""


async def scheduled_runs(rt: Runtime) -> list[str]:
    return sorted(r.id for r in await rt.store.list_runs(limit=100, workflow="nightly"))


async def started(make_runtime: MakeRuntime, clock: FakeClock, workflows_dir: Path) -> Runtime:
    rt = await make_runtime(clock=clock)
    await Scheduler(rt, Catalog(workflows_dir)).start()
    return rt


async def test_a_schedule_fires_at_its_local_time_and_then_the_next_day(
    make_runtime: MakeRuntime, workflows_dir: Path
) -> None:
    workflow(nightly(), workflows_dir)
    clock = FakeClock(START)
    rt = await started(make_runtime, clock, workflows_dir)
    [row] = await list_schedules(rt.store.engine)
    assert (row.workflow, row.next_at, row.timezone) == ("nightly", FIRST, "Europe/Berlin")

    clock.now = FIRST - 1
    assert await rt.fire_due() == 0 and await scheduled_runs(rt) == []
    clock.now = FIRST + 0.5
    assert await rt.fire_due() == 1
    entry = schedule_id("nightly", 0)
    run = await finished(rt, fire_run_id(entry, FIRST))
    assert run.started_by == "schedule:nightly" and run.inputs == {"scope": "all"}
    assert run.meta["source"] == "schedule"
    [row] = await list_schedules(rt.store.engine)
    assert row.next_at == FIRST + DAY and row.last_run_id == run.id

    clock.now = FIRST + DAY + 2
    assert await rt.fire_due() == 1
    assert len(await scheduled_runs(rt)) == 2
    async with rt.store.engine.connect() as conn:
        audit = (await conn.execute(sa.select(action_log).where(action_log.c.kind == "schedule"))).all()
    assert [(a.actor, a.detail["source"], a.detail["missed"]) for a in audit] == [
        ("schedule:nightly", "schedule", False)
    ] * 2


@pytest.mark.parametrize(("missed", "runs"), [("run_once", 1), ("skip", 0)])
async def test_fires_missed_while_nothing_ran_run_once_or_are_skipped(
    make_runtime: MakeRuntime, workflows_dir: Path, missed: str, runs: int
) -> None:
    workflow(nightly(missed), workflows_dir)
    clock = FakeClock(START)
    first = await started(make_runtime, clock, workflows_dir)
    await first.stop(grace=0.5)  # down for three nights

    clock.now = FIRST + 3 * DAY + 3600
    second = await started(make_runtime, clock, workflows_dir)  # its start fires what is due
    await second.fire_due()
    found = await scheduled_runs(second)
    assert len(found) == runs
    if runs:
        assert found == [fire_run_id(schedule_id("nightly", 0), FIRST)]  # one run for the three missed fires
        await finished(second, found[0])
    [row] = await list_schedules(second.store.engine)
    assert row.next_at == FIRST + 4 * DAY  # the first fire time after now, either way


async def test_a_changed_schedule_starts_over_and_a_removed_one_stops(
    make_runtime: MakeRuntime, workflows_dir: Path
) -> None:
    workflow(nightly(), workflows_dir)
    clock = FakeClock(START)
    rt = await make_runtime(clock=clock)
    scheduler = Scheduler(rt, Catalog(workflows_dir))
    await scheduler.start()
    (workflows_dir / "nightly.yaml").write_text(nightly().replace('"0 3 * * *"', '"30 4 * * *"'))
    [row] = await scheduler.sync()
    assert row.next_at == FIRST + 5400 and row.cron == "30 4 * * *"
    (workflows_dir / "nightly.yaml").write_text(nightly().replace("on:\n  schedule:\n    - ", "# "))
    [row] = await scheduler.sync()
    assert row.next_at is None
    clock.now = FIRST + DAY
    assert await rt.fire_due() == 0 and await scheduled_runs(rt) == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_runtimes_on_one_postgres_database_fire_each_time_once(
    make_runtime: MakeRuntime, workflows_dir: Path
) -> None:
    workflow(nightly(), workflows_dir)
    clock = FakeClock(START)
    one, two = await make_runtime(clock=clock), await make_runtime(clock=clock)
    await asyncio.gather(*(Scheduler(rt, Catalog(workflows_dir)).start() for rt in (one, two)))
    for night in range(4):
        clock.now = FIRST + night * DAY + 1
        fired = await asyncio.gather(one.fire_due(), two.fire_due())
        assert sum(fired) <= 1  # the alarms may also have fired it on their own; never twice
        assert len(await scheduled_runs(one)) == night + 1
    for run_id in await scheduled_runs(one):
        assert (await finished(one, run_id)).status == "succeeded"
    [row] = await list_schedules(one.store.engine)
    assert row.next_at == FIRST + 4 * DAY


async def test_a_fire_whose_run_was_started_before_a_crash_is_not_started_again(
    make_runtime: MakeRuntime, workflows_dir: Path
) -> None:
    loaded = workflow(nightly(), workflows_dir)
    clock = FakeClock(START)
    rt = await started(make_runtime, clock, workflows_dir)
    clock.now = FIRST + 1
    # A process submitted this fire's run, then died before moving the schedule on: its timer is still due.
    earlier = fire_run_id(schedule_id("nightly", 0), FIRST)
    await rt.submit(loaded, {"scope": "all"}, started_by="schedule:nightly", run_id=earlier)
    assert await rt.fire_due() == 1
    assert await scheduled_runs(rt) == [earlier]
    [row] = await list_schedules(rt.store.engine)
    assert row.next_at == FIRST + DAY and row.last_run_id == earlier


def test_a_schedule_may_be_one_cron_string_read_in_utc() -> None:
    text = 'name: tidy\non:\n  schedule: "0 3 * * *"\nsteps:\n  a: {notify: tidy}\n'
    [entry] = workflow(text).spec.on.schedule
    assert (entry.cron, entry.timezone, entry.missed) == ("0 3 * * *", "UTC", "run_once")
