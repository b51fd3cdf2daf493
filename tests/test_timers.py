"""The one alarm per process: every deadline fires at its time, never at a refresh; a timer claimed by a
process that died fires elsewhere once the claim lapses; NOTIFY wakes the other processes' alarms; and a
burst of due timers fires each exactly once across two runtimes. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.runtime.firing import kinds
from bot.runtime.runtime import Runtime
from bot.storage.tables import timers
from bot.storage.timers import claim_due, claim_timer
from tests.conftest import FakeClock
from tests.helpers import eventually, finished, workflow
from tests.test_approvals_engine import actions, waiting_request
from tests.test_crash import cli

MakeRuntime = Callable[..., Awaitable[Runtime]]

RUNG_IN_3S = """
name: rung
steps:
  ask:
    approval:
      title: "Ship?"
      approvers: ["user:alice"]
      timeout: 1h
      escalation:
        - {after: 3s, remind: true}
  ship: {needs: [ask], notify: shipped}
"""

WAIT_5S = """
name: pause
steps:
  pause: {wait: 5s}
  after: {needs: [pause], notify: done}
"""


async def abandon(runtime: Runtime) -> None:
    """Stop a runtime the way a crash does: its tasks end, and its claims and leases stay in the table."""
    runtime.stopping = True
    await runtime.alarm.stop(release=False)
    for task in runtime._background:
        task.cancel()
    drivers = [lr.driver for lr in runtime.live.values() if lr.driver is not None]
    for task in drivers:
        task.cancel()
    await asyncio.gather(*runtime._background, *drivers, return_exceptions=True)
    runtime.live.clear()


async def all_set_for(due_at: float, *runtimes: Runtime) -> None:
    """Wait until every runtime's alarm has heard of the timer and sleeps until it (so a fake clock moved
    next is seen first by the test, not by an alarm still looking)."""

    async def set_for() -> bool:
        for runtime in runtimes:
            await runtime.alarm.settled()
        return all(r.alarm.next_at == pytest.approx(due_at) for r in runtimes)

    await eventually(set_for, message=f"every alarm to be set for {due_at}")


async def pending_timers(runtime: Runtime) -> list[Any]:
    async with runtime.store.engine.connect() as conn:
        query = sa.select(timers).where(timers.c.fired_at.is_(None)).order_by(timers.c.due_at)
        return list((await conn.execute(query)).all())


async def test_an_escalation_rung_fires_at_its_time_not_at_a_refresh(make_runtime: MakeRuntime) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    asked_at = clock()
    run_id, _ = await waiting_request(runtime, RUNG_IN_3S)
    await runtime.alarm.settled()
    # The alarm is set for the rung, not only for the approval's timeout an hour later.
    assert runtime.alarm.next_at == pytest.approx(asked_at + 3)
    while "reminded" not in await actions(runtime, run_id) and "escalated" not in await actions(
        runtime, run_id
    ):
        assert clock() < asked_at + 4, "the 3 s rung had not fired a second after it fell due"
        clock.advance(0.25)
        runtime.alarm.wake()  # the fake clock jumped: the alarm looks, as it does when its sleep ends
        await runtime.alarm.settled()
    assert clock() >= asked_at + 3  # and not before its time
    assert runtime.alarm.next_at == pytest.approx(asked_at + 3600)


async def test_a_wait_claimed_by_a_runtime_that_died_fires_on_another_after_the_claim_lapses(
    make_runtime: MakeRuntime,
) -> None:
    # An hour's wait and lease on the fake clock: the alarms' own sleeps (real seconds) never end mid-test.
    clock = FakeClock()
    first = await make_runtime(clock=clock, lease_seconds=3600.0)
    second = await make_runtime(clock=clock, lease_seconds=3600.0)
    started = await first.submit(workflow(WAIT_5S.replace("5s", "1h")), {}, started_by="bob")
    [timer] = await eventually(lambda: pending_timers(first), message="the wait's timer")
    await all_set_for(timer.due_at, first, second)
    clock.advance(3600)
    # The first runtime's alarm claims the due wait, and the process dies before firing it.
    [claimed] = await claim_due(first.store.engine, first.owner, clock(), 3600.0, 100, kinds(first))
    assert claimed.id == timer.id
    await abandon(first)
    second.alarm.wake()
    await second.alarm.settled()
    assert [t.id for t in await pending_timers(second)] == [timer.id]  # held by the dead one's claim
    assert second.alarm.next_at == pytest.approx(clock() + 3600)  # it looks again when the claim lapses
    clock.advance(3600)
    second.alarm.wake()
    row = await finished(second, started.run_id)
    assert row.status == "succeeded"
    assert await pending_timers(second) == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_notify_wakes_another_process_alarm_for_an_earlier_timer(make_runtime: MakeRuntime) -> None:
    first = await make_runtime()
    second = await make_runtime()
    await waiting_request(second, RUNG_IN_3S.replace("3s", "30m"))
    await second.alarm.settled()
    later = second.alarm.next_at
    assert later is not None
    started = await first.submit(workflow(WAIT_5S.replace("5s", "2s")), {}, started_by="bob")

    async def woken() -> bool:
        return second.alarm.next_at is not None and second.alarm.next_at < later

    await eventually(woken, message="the second alarm to hear of the first one's earlier timer")
    # Only the second process is left to fire it, at its time.
    await abandon(first)
    row = await finished(second, started.run_id)
    assert row.status == "succeeded"


async def test_300_due_timers_fire_exactly_once_across_two_runtimes(make_runtime: MakeRuntime) -> None:
    runtimes = [await make_runtime(), await make_runtime()]
    handed: Counter[str] = Counter()
    fired: Counter[str] = Counter()

    def handler_for(runtime: Runtime) -> Callable[[int, str], Awaitable[bool]]:
        async def tick(timer_id: int, ref: str) -> bool:
            handed[ref] += 1
            async with runtime.store.engine.begin() as conn:
                won = await claim_timer(conn, timer_id, runtime.clock())
            if won:
                fired[ref] += 1
            return won

        return tick

    for runtime in runtimes:
        await runtime.handle_timers("test_tick", handler_for(runtime))
    now = runtimes[0].clock()
    rows = [
        {"run_id": f"r{i}", "step_key": "tick", "kind": "test_tick", "ref": f"t{i}", "due_at": now - 1}
        for i in range(300)
    ]
    async with runtimes[0].store.engine.begin() as conn:
        await conn.execute(timers.insert(), rows)
    runtimes[0].alarm.arm(now - 1)
    runtimes[1].alarm.arm(now - 1)
    await eventually(lambda: sum(fired.values()) >= 300, message="300 timers to fire")
    await asyncio.gather(*(r.alarm.settled() for r in runtimes))
    assert set(fired) == {f"t{i}" for i in range(300)}
    assert set(fired.values()) == {1}
    assert set(handed.values()) == {1}  # claims hand each timer to one runtime only
    assert await pending_timers(runtimes[0]) == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_wait_armed_by_a_process_killed_with_sigkill_fires_on_another_at_its_time(
    make_runtime: MakeRuntime, db_url: str, workflows_dir: Path
) -> None:
    # Before, the survivor learnt of the dead process's timer only at its next refresh (144 s late).
    survivor = await make_runtime()
    (workflows_dir / "pause.yaml").write_text(WAIT_5S.replace("5s", "3s"))
    proc = cli(db_url, workflows_dir, "workflow", "run", "pause")
    try:
        [timer] = await eventually(
            lambda: pending_timers(survivor), message="the killed process's wait", ignore=(sa.exc.DBAPIError,)
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    row = await finished(survivor, timer.run_id, timeout=60)  # a slow start under load is not lateness
    assert row.status == "succeeded"
    async with survivor.store.engine.connect() as conn:
        fired_by = (
            await conn.execute(sa.select(timers.c.claimed_by).where(timers.c.id == timer.id))
        ).scalar()
    assert fired_by == survivor.owner


async def listening_backends(runtime: Runtime) -> set[int]:
    """The server pids of the bells listening on this test's channel."""
    query = sa.text("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND query LIKE :channel")
    async with runtime.store.engine.connect() as conn:
        schema = (await conn.execute(sa.text("SELECT current_schema()"))).scalar_one()
        rows = await conn.execute(query, {"channel": f"%{schema}%"})
        return {int(pid) for pid in rows.scalars()}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_the_bell_listens_again_after_the_database_drops_its_connection(
    make_runtime: MakeRuntime,
) -> None:
    first = await make_runtime()
    second = await make_runtime()
    before = await listening_backends(second)
    assert len(before) == 2
    async with second.store.engine.connect() as conn:
        for pid in before:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    async def relistening() -> set[int] | None:
        pids = await listening_backends(second)
        return pids if len(pids) == 2 and not pids & before else None

    await eventually(relistening, message="both bells to listen again")
    await waiting_request(second, RUNG_IN_3S.replace("3s", "30m"))
    await second.alarm.settled()
    later = second.alarm.next_at
    assert later is not None
    await first.submit(workflow(WAIT_5S.replace("5s", "2s")), {}, started_by="bob")

    async def woken() -> bool:
        return second.alarm.next_at is not None and second.alarm.next_at < later

    await eventually(woken, message="the second alarm to hear of the first one's timer after the reconnect")


async def test_a_graceful_stop_gives_back_its_claims_so_another_runtime_fires_them_at_once(
    make_runtime: MakeRuntime,
) -> None:
    clock = FakeClock()
    first = await make_runtime(clock=clock, lease_seconds=3600.0)
    second = await make_runtime(clock=clock, lease_seconds=3600.0)
    started = await first.submit(workflow(WAIT_5S.replace("5s", "1h")), {}, started_by="bob")
    [timer] = await eventually(lambda: pending_timers(first), message="the wait's timer")
    await all_set_for(timer.due_at, first, second)
    clock.advance(3600)
    # The first runtime's alarm has claimed the due wait when it is asked to stop.
    assert len(await claim_due(first.store.engine, first.owner, clock(), 3600.0, 100, kinds(first))) == 1
    await first.stop()
    second.alarm.wake()  # no time passes: the claim is given back, not waited out
    row = await finished(second, started.run_id)
    assert row.status == "succeeded"
