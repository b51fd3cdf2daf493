"""Leases: one owner per run, takeover on the same host as soon as the owner is dead (kill -9, a zombie,
a reused pid), leases released at a graceful stop, the CLI driving only its own run, and a run that
keeps crashing its process quarantined. Real `switchboard run` processes, real SQLite and PostgreSQL.

Lease time is 30 s throughout: a run that moves on within the 10 s test timeouts was taken over
because its owner was seen dead, not because the lease lapsed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.approvals.store import ApprovalStore
from bot.config import Settings
from bot.owners import boot_id, is_dead, new_owner, start_time
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.journal import Batch
from bot.storage.runs import RunStore
from engine.state import RunState
from tests.bot_process import Bot, cli
from tests.helpers import eventually, status_is, workflow

TAKEOVER_TIMEOUT = 10.0  # well under the 30 s lease: only a dead-owner takeover fits in it


def slow(log: Path, name: str = "slow", first: str = "pause: {wait: 1s}") -> str:
    """A workflow whose step ``a`` hangs on its first attempt and finishes on the next."""
    line = f"echo start-$SWITCHBOARD_ATTEMPT >> {log}; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 20; echo end >> {log}"
    return f"""
name: {name}
steps:
  {first}
  a: {{needs: [pause], run: ["sh", "-c", "{line}"]}}
"""


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[RunStore]:
    engine = create_engine(db_url)
    yield RunStore(engine)
    await engine.dispose()


@pytest.fixture
def waiting_run(settings_for: Callable[..., Settings]) -> Callable[[Any], Any]:
    """Start a run that parks on its first wait, from a client that then goes: nobody holds it."""

    async def start(loaded: Any) -> str:
        settings = settings_for()
        engine = create_engine(settings.database_url)
        await migrate(engine)
        client = Runtime(settings, RunStore(engine), scope=set())
        await client.start(resume=False)
        try:
            started = await client.submit(loaded, {}, started_by="test")
            await status_is(client, started.run_id, "waiting")
        finally:
            await client.stop(grace=0.1)
            await engine.dispose()
        return started.run_id

    return start


async def bot_running_step(db_url: str, workflows: Path, log: Path) -> Bot:
    bot = Bot(db_url, workflows)
    await bot.start()
    await eventually(lambda: "start-1" in lines(log), 30, "the bot to start step a")
    return bot


# -- liveness of an owner ------------------------------------------------------------------------


def test_an_owner_with_a_reused_pid_or_from_an_earlier_boot_is_dead() -> None:
    me = new_owner()
    host, pid = socket.gethostname(), os.getpid()
    assert not is_dead(me, "someone-else")  # this very process
    assert not is_dead(f"{host}:{pid}:{start_time(pid)}:{boot_id()}:abc", me)  # another runtime of it
    assert is_dead(f"{host}:{pid}:1:{boot_id()}:abc", me)  # same pid, another process's start time
    assert is_dead(f"{host}:{pid}:{start_time(pid)}:0000deadbeef:abc", me)  # the host rebooted since
    assert not is_dead(f"elsewhere:{pid}:1:0000deadbeef:abc", me)  # another host: wait for the lease


def test_a_zombie_owner_is_dead() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "from bot.owners import new_owner; print(new_owner())"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    owner = child.stdout.readline().strip()
    try:
        eventually_sync(lambda: state_of(child.pid) == "Z")
        assert is_dead(owner, new_owner())  # exited, never reaped: it still has a pid, and runs nothing
    finally:
        child.wait()
        child.stdout.close()
    assert is_dead(owner, new_owner())


def state_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2]


def eventually_sync(probe: Callable[[], bool], timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- takeover ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reaped", [True, False], ids=["killed", "zombie"])
async def test_a_killed_bot_s_run_is_taken_over_long_before_its_lease_lapses(
    db_url: str,
    workflows_dir: Path,
    tmp_path: Path,
    make_runtime: Callable[..., Any],
    store: RunStore,
    waiting_run: Callable[[Any], Any],
    reaped: bool,
) -> None:
    log = tmp_path / "log"
    run_id = await waiting_run(workflow(slow(log), workflows_dir))
    bot = await bot_running_step(db_url, workflows_dir, log)
    try:
        # A worker on the same host, started while the bot is alive: it leaves the bot's run alone...
        worker: Runtime = await make_runtime(lease_seconds=30.0)
        row = await store.run_row(run_id)
        assert row is not None and row.lease_owner is not None and f":{bot.pid}:" in row.lease_owner
        bot.kill(reap=reaped)
        if not reaped:  # the bot is a zombie: its pid still exists, as the killed process nobody reaped
            await eventually(lambda: state_of(bot.pid) == "Z", TAKEOVER_TIMEOUT, "the bot to be a zombie")
        # ...and takes it the moment the bot is dead, not when the 30 s lease lapses.
        await eventually(lambda: "end" in lines(log), TAKEOVER_TIMEOUT, "the run to move on elsewhere")
        await status_is(worker, run_id, "succeeded")
        assert lines(log) == ["start-1", "start-2", "end"]
        final = await store.run_row(run_id)
        assert final is not None and final.load_attempts == 0  # it made progress: the crash is forgiven
    finally:
        bot.close()


async def test_sigterm_releases_every_lease_so_another_process_takes_over_at_once(
    db_url: str,
    workflows_dir: Path,
    tmp_path: Path,
    make_runtime: Callable[..., Any],
    store: RunStore,
    waiting_run: Callable[[Any], Any],
) -> None:
    log = tmp_path / "log"
    run_id = await waiting_run(workflow(slow(log), workflows_dir))
    bot = await bot_running_step(db_url, workflows_dir, log)
    try:
        assert bot.terminate() == 0
        row = await store.run_row(run_id)
        assert row is not None and row.lease_owner is None and row.status != "succeeded"
        assert "lost the lease" not in bot.output()
    finally:
        bot.close()
    worker: Runtime = await make_runtime(lease_seconds=30.0)
    await status_is(worker, run_id, "succeeded", timeout=TAKEOVER_TIMEOUT)


# -- the CLI drives only its own run -------------------------------------------------------------


QUICK = """
name: quick
steps:
  pause: {wait: 2s}
  done: {needs: [pause], run: ["true"]}
"""


async def test_workflow_run_drives_only_its_own_run_unless_worker(
    db_url: str,
    workflows_dir: Path,
    tmp_path: Path,
    make_runtime: Callable[..., Any],
    store: RunStore,
    waiting_run: Callable[[Any], Any],
) -> None:
    log = tmp_path / "log"
    other_text = f"""
name: other
steps:
  pause: {{wait: 1s}}
  b: {{needs: [pause], run: ["sh", "-c", "echo other >> {log}"]}}
"""
    other = await waiting_run(workflow(other_text, workflows_dir))
    workflow(QUICK, workflows_dir)
    done = cli(db_url, workflows_dir, "workflow", "run", "quick")
    assert done.returncode == 0, done.stdout + done.stderr
    # Someone else's run, its timer long due, was not touched by the client.
    row = await store.run_row(other)
    assert row is not None and row.status == "waiting" and lines(log) == []
    done = cli(db_url, workflows_dir, "workflow", "run", "quick", "--worker")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(log) == ["other"]  # as a worker it took the other run too
    row = await store.run_row(other)
    assert row is not None and row.status == "succeeded"


# -- quarantine ----------------------------------------------------------------------------------------


async def test_a_run_that_keeps_crashing_its_process_is_quarantined(
    db_url: str,
    workflows_dir: Path,
    tmp_path: Path,
    make_runtime: Callable[..., Any],
    store: RunStore,
    waiting_run: Callable[[Any], Any],
) -> None:
    log = tmp_path / "log"
    hang = f"echo start >> {log}; sleep 20"
    text = f"""
name: crashy
steps:
  pause: {{wait: 1s}}
  a: {{needs: [pause], run: ["sh", "-c", "{hang}"]}}
"""
    run_id = await waiting_run(workflow(text, workflows_dir))
    for crashes in (1, 2):
        bot = Bot(db_url, workflows_dir, SWITCHBOARD_CRASH_ATTEMPTS="2")
        try:
            await bot.start()
            await eventually(
                lambda n=crashes: lines(log).count("start") == n, 30, f"step a's start {crashes}"
            )
            bot.kill()  # as if step a's input crashed the bot
        finally:
            bot.close()
    bot = Bot(db_url, workflows_dir, SWITCHBOARD_CRASH_ATTEMPTS="2")
    try:
        await bot.start()

        async def failed() -> Any:
            row = await store.run_row(run_id)
            return row if row is not None and row.status == "failed" else None

        row = await eventually(failed, 30, "the run to be quarantined")
        assert row.error is not None and "quarantined" in row.error and "a" in row.error
        assert "SWITCHBOARD_CRASH_ATTEMPTS=2" in row.error
        assert lines(log).count("start") == 2  # not a third time
        steps = {s.key: s.status for s in await store.step_rows(run_id)}
        assert steps["a"] == "failed"
        [last] = (await store.events_after(run_id, row.event_seq - 1))[-1:]
        assert last.type == "run_finished" and last.data["quarantined"] and row.lease_owner is None
        assert row.load_attempts == 0  # a retry, once the cause is fixed, gets every attempt again
    finally:
        bot.close()


# -- one load per process, no false alarms, every run resumed ------------------------------------------


APPROVE = """
name: gate
steps:
  ok: {approval: {title: "go?"}}
  after: {needs: [ok], run: ["true"]}
"""


async def test_a_run_is_loaded_once_however_many_ask_at_once(
    make_runtime: Callable[..., Any], waiting_run: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await waiting_run(workflow(APPROVE))
    runtime: Runtime = await make_runtime()
    before = [e.type for e in await runtime.store.events_after(run_id)].count("run_resumed")
    # Clicks, the poll loop and a driver's last look can all ask for one parked run together.
    await asyncio.gather(*(runtime.load(run_id) for _ in range(50)))
    await eventually(lambda: run_id not in runtime.live, 20, "the run to park again")
    resumed = [e.type for e in await runtime.store.events_after(run_id)].count("run_resumed")
    assert resumed - before == 1
    [request] = await runtime.approvals.pending(run_id=run_id)
    await runtime.decide(request.id, "alice", "approve", background=False)
    await status_is(runtime, run_id, "succeeded")
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


async def test_runs_that_park_while_their_lease_is_renewed_raise_no_lost_lease_alarm(
    make_runtime: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    needs = [""] + [f", needs: [w{i}]" for i in range(19)]
    waits = "\n".join(f"  w{i}: {{wait: 0.05s{needs[i]}}}" for i in range(20))
    loaded = workflow(f"name: parks\nsteps:\n{waits}\n")
    runtime: Runtime = await make_runtime(lease_seconds=2.0)  # renewed every 0.67 s
    runs = [await runtime.submit(loaded, {}, started_by="test") for _ in range(10)]
    for run in runs:
        await status_is(runtime, run.run_id, "succeeded", timeout=60)
    assert "lost the lease" not in caplog.text


async def test_every_unfinished_run_is_resumed_at_start_not_only_the_first_page(
    settings_for: Callable[..., Settings], make_runtime: Callable[..., Any]
) -> None:
    loaded = workflow("name: idle\nsteps:\n  nap: {wait: 1h}\n")
    settings = settings_for()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    store = RunStore(engine)
    # Runs stored by a process that died before driving any of them: more than one resume page.
    batch = Batch()
    now = time.time()
    await store.save_version(loaded.digest, loaded.spec.name, loaded.path, loaded.source, now)
    count = 220  # more than one claim pass, and more than the process drives at once (max_runs 100)
    for i in range(count):
        state = RunState(f"r{i:05d}", loaded.spec, {}, started_by="test", created_at=now + i)
        store.new_run(batch, state, loaded.digest, now + i, None, now)
    await store.journal.write(batch)
    await engine.dispose()
    runtime: Runtime = await make_runtime()

    async def all_waiting() -> bool:
        return len(await runtime.store.list_runs(limit=count, status="waiting")) == count

    await eventually(all_waiting, 60, "every stored run to be resumed")


async def test_approvals_decide_drives_only_the_run_it_decided(
    db_url: str, workflows_dir: Path, tmp_path: Path, store: RunStore, waiting_run: Callable[[Any], Any]
) -> None:
    log = tmp_path / "log"
    other_text = f"""
name: other
steps:
  pause: {{wait: 1s}}
  b: {{needs: [pause], run: ["sh", "-c", "echo other >> {log}"]}}
"""
    other = await waiting_run(workflow(other_text, workflows_dir))
    gated = await waiting_run(workflow(APPROVE, workflows_dir))
    engine = create_engine(db_url)
    try:
        [request] = await ApprovalStore(engine, time.time).pending(run_id=gated)
    finally:
        await engine.dispose()
    done = cli(db_url, workflows_dir, "approvals", "decide", request.id, "approve", "--as", "alice")
    assert done.returncode == 0, done.stdout + done.stderr
    row = await store.run_row(gated)
    assert row is not None and row.status == "succeeded"
    row = await store.run_row(other)
    assert row is not None and row.status == "waiting" and lines(log) == []  # its due timer left alone
