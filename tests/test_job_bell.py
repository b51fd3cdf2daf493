"""Wake-ups for runner jobs: the run's watcher hears a job end, and other processes hear of it by NOTIFY.

The slow fallback look is moved an hour away, so a test that passes did so by a wake-up: without one
it would wait for its own timeout and fail.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime import job_watch
from bot.runtime.runtime import Runtime
from bot.storage import job_bell
from bot.storage.job_bell import ENDED, QUEUED, notify_jobs
from bot.storage.runner_jobs import DONE, LEASED, LOST, Job, RunnerJobs
from bot.storage.timer_bell import TimerBell
from tests.helpers import eventually


@pytest.fixture(autouse=True)
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_watch, "FALLBACK", 3600.0)


async def leased_job(rt: Runtime, step: str) -> Job:
    now = rt.clock()
    async with rt.store.engine.begin() as conn:
        await conn.execute(
            rt.jobs.insert, rt.jobs.row("r1", step, 1, False, "run", ("deploy",), {}, None, now)
        )
    job = await rt.jobs.claim("runner-1", "build-7", frozenset({"deploy"}), 4, now, 600.0)
    assert job is not None and job.step == step
    return job


async def test_the_watcher_hears_a_job_end_and_a_hand_back_at_once(runtime: Runtime) -> None:
    job = await leased_job(runtime, "deploy")
    since = runtime.job_watch.rung()
    waiting = asyncio.create_task(runtime.job_watch.change(job, 60.0, since))
    await asyncio.sleep(0)  # it waits now
    assert not waiting.done()  # leased, lease far off: nothing to say yet
    assert await runtime.jobs.finish(job.id, "runner-1", {"ok": True, "result": {}}, runtime.clock())
    ended = await waiting
    assert ended is not None and ended.status == DONE

    other = await leased_job(runtime, "verify")
    waiting = asyncio.create_task(runtime.job_watch.change(other, 60.0, runtime.job_watch.rung()))
    await asyncio.sleep(0)
    assert await runtime.jobs.hand_back(other.id, "runner-1", runtime.clock())
    handed = await waiting
    assert handed is not None and handed.status == LOST


async def test_a_job_that_ended_before_its_waiter_came_is_seen_at_once(runtime: Runtime) -> None:
    job = await leased_job(runtime, "deploy")
    since = runtime.job_watch.rung()  # read as leased...
    assert await runtime.jobs.finish(job.id, "runner-1", {"ok": True, "result": {}}, runtime.clock())
    ended = await runtime.job_watch.change(job, 60.0, since)  # ...and it ended before the wait began
    assert ended is not None and ended.status == DONE


async def test_the_watcher_looks_when_the_lease_it_watches_runs_out(runtime: Runtime) -> None:
    now = runtime.clock()
    async with runtime.store.engine.begin() as conn:
        await conn.execute(
            runtime.jobs.insert, runtime.jobs.row("r1", "deploy", 1, False, "run", ("d",), {}, None, now)
        )
    job = await runtime.jobs.claim("runner-1", "build-7", frozenset({"d"}), 1, now, 0.3)
    assert job is not None
    lapsed = await runtime.job_watch.change(job, 60.0, runtime.job_watch.rung())
    assert lapsed is not None and lapsed.status == LEASED and (lapsed.lease_until or 0) < runtime.clock()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_other_processes_hear_jobs_queued_and_ended_by_notify(runtime: Runtime) -> None:
    heard: list[str | None] = []
    bell = TimerBell(runtime.store.engine, lambda _due: None, owner="me", jobs=heard.append)
    await bell.start()
    try:
        await eventually(lambda: None in heard, 30, "the reconnect's look-again")
        heard.clear()
        async with runtime.store.engine.begin() as conn:
            await notify_jobs(conn, ENDED, "me")  # its own: told directly, not heard back
            await notify_jobs(conn, QUEUED, "other")
        async with runtime.store.engine.begin() as conn:
            await conn.execute(job_bell.notice(ENDED, "other"))
        await eventually(lambda: heard == [QUEUED, ENDED], 30, "both notifications")
        # A result stored by another process notifies in the same statement, only when it was taken.
        job = await leased_job(runtime, "deploy")
        elsewhere = RunnerJobs(runtime.store.engine, owner="other")
        assert not await elsewhere.finish(job.id, "another-runner", {"ok": True}, runtime.clock())
        assert await elsewhere.finish(job.id, "runner-1", {"ok": True}, runtime.clock())
        await eventually(lambda: heard == [QUEUED, ENDED, ENDED], 30, "the result's notification")
    finally:
        await bell.stop()


def test_the_bell_rings_what_it_hears() -> None:
    bell = job_bell.JobBell()
    bell.heard(QUEUED)
    bell.heard(ENDED)
    assert (bell.queued.rung, bell.ended.rung) == (1, 1)
    bell.heard(None)  # reconnected: anything may have been missed
    assert (bell.queued.rung, bell.ended.rung) == (2, 2)
