"""The runtime: carries out the core's decisions, stores them first, and shares runs between processes.

Every run is driven by one task that applies its signals in batches: the decisions of a batch are
committed together (through the journal) before any effect starts, so a step's start and finish are
durable before anything that depends on them proceeds. A run that only waits (a timer, an approval,
a sub-workflow) is unloaded: it costs a row, not a task.

This module holds the Runtime (its parts, start and stop, and what callers ask of it); the work is
in starts.py (submit, load), driver.py (a run's task), commit.py (storing a batch), effects.py
(running steps) and leases.py (resume, lease renewal, polling).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from bot.approvals.store import ApprovalStore, Outcome
from bot.config import Settings
from bot.metrics import Metrics
from bot.owners import new_owner
from bot.runtime import claims, leases, orphans, rewinds, starts
from bot.runtime.alarm import AlarmClock
from bot.runtime.events import EventHub
from bot.runtime.firing import TIMER_BATCH, fire, fire_run_timers_now, other_kinds
from bot.runtime.job_watch import JobWatch
from bot.runtime.live import LiveRun, RunLocks
from bot.runtime.starts import Started, new_run_id
from bot.runtime.subworkflows import ChildStarter
from bot.runtime.watch import OwnerWatch
from bot.storage.journal import Batch
from bot.storage.leases import Claimed, Loaded
from bot.storage.run_queue import queued_card_upsert
from bot.storage.run_rows import RunRow
from bot.storage.runner_jobs import RunnerJobs
from bot.storage.runner_registry import RunnerRegistry
from bot.storage.runs import RunStore
from bot.storage.step_processes import StepProcesses
from bot.storage.timers import claim_due, release_claims
from engine.activities.base import ActivityContext
from engine.activities.processes import boot_id
from engine.spec import Workflow
from engine.state import RunState, StepStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from engine.loader import LoadedWorkflow

log = logging.getLogger(__name__)
# A decision being made through ``Runtime.decide``: the runs its transaction claimed (``_claim_decided``).
_CLAIMING: ContextVar[dict[str, Loaded] | None] = ContextVar("switchboard_claiming", default=None)
Clock = Callable[[], float]
# Adds rows to a run's batch so they commit with its state change: (batch, state, event rows, now).
Observer = Callable[[Batch, RunState, list[dict[str, Any]], float], None]


class Runtime:
    """Runs workflows durably in this process, cooperating with other processes on one database."""

    def __init__(
        self, settings: Settings, store: RunStore, clock: Clock = time.time, scope: set[str] | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.owner = new_owner()
        store.journal.owner = self.owner  # its timers' notifications name it, so its own bell skips them
        self.live: dict[str, LiveRun] = {}
        # None: a worker, which takes any run nobody drives. A set: a CLI client, which drives only
        # the runs it started or decided (and their sub-workflows), and fires only their timers.
        self.scope = scope
        self.locks = RunLocks()
        self.nudge = asyncio.Event()  # set when a lease holder on this host exits: check at once
        self.watch = OwnerWatch(self.owner, self.nudge.set)
        self.reconnected = False  # set when this process let its runs go for want of a database
        self.work_waiting = False  # set when runs may be claimable (the bell, or capacity freed): claim
        self.hub = EventHub()
        self.approvals = ApprovalStore(store.engine, clock)
        self.approvals.on_settled.append(self._claim_decided)
        # Runs claimed in the transaction of the decision that settled them, with what it read of them
        # and ``drivers_started`` then: the wake that follows the commit loads from this (starts.load).
        self.decided: dict[str, tuple[Loaded, int]] = {}
        self.alarm = AlarmClock(self)
        self.children = ChildStarter(self)
        self.processes = StepProcesses(store.engine)
        self.jobs, self.runners = RunnerJobs(store.engine, self.owner), RunnerRegistry(store.engine)
        self.job_watch = JobWatch(self.jobs, clock)
        self.queued_card = queued_card_upsert(store.engine)  # the card of a run waiting its turn
        self.host, self.boot_id = socket.gethostname(), boot_id()  # where step programs run
        self.activity = ActivityContext(
            workflows_dir=settings.workflows_dir,
            llm=settings.llm(),
            kill_grace=settings.kill_grace,
            on_spawn=functools.partial(orphans.record_spawn, self),
            http_guard=settings.http_guard(),
        )
        self.slots = asyncio.Semaphore(settings.max_parallel_steps)
        self.metrics = Metrics()  # this runtime's own registry: /metrics serves it
        self.drivers_started = 0  # drivers started here in all (a start, a resume, a takeover)
        self.driver_starts: dict[str, int] = {}  # run -> drivers_started when its latest driver started
        self.observers: list[Observer] = [self._measure]
        # Timers that are not a run's: kind -> handler(timer_id, ref), which marks the timer fired itself.
        self.timer_kinds: dict[str, Callable[[int, str], Awaitable[bool]]] = {}
        self.after_commit: list[Callable[[], None]] = []
        self.before_release: list[
            Callable[[], Awaitable[None]]
        ] = []  # at stop, while the runs are still here
        self.specs: dict[str, Workflow] = {}  # parsed workflow versions, by digest
        self.stopping = False  # set by stop(): no new steps start and no runs load here
        self._background: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, resume: bool = True) -> list[str]:
        """Start the journal, the alarm clock and the polling loop; resume unfinished runs."""
        self.store.journal.start()
        resumed = await self.resume_all() if resume else []
        await self.alarm.start()
        self._background.append(asyncio.create_task(leases.poll_loop(self), name="runtime-poll"))
        self._background.append(asyncio.create_task(leases.lease_loop(self), name="runtime-leases"))
        return resumed

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let running steps finish within ``grace``, then leave the rest to resume."""
        self.stopping = True
        await self.alarm.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # No new steps start now (see effects.carry_out); give running ones ``grace`` to finish and be stored.
        deadline = time.monotonic() + grace
        while any(lr.tasks for lr in self.live.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)  # let the drivers store what just finished
        for hook in self.before_release:  # e.g. a status card drawn later than its run's last commit
            try:
                await hook()
            except Exception:
                log.exception("stopping: a shutdown hook failed")
        drivers = [lr.driver for lr in self.live.values() if lr.driver is not None]
        for task in drivers:
            task.cancel()  # a step still running stays "running" in storage: resume runs it again
        await asyncio.gather(*drivers, return_exceptions=True)
        self.watch.close()
        await self.job_watch.close()
        try:  # every lease, including runs a driver left behind: another process may take them at once
            await self.store.release_all(self.owner)
        except Exception:
            log.warning(
                "could not release this process's run leases; they lapse in %s s", self.settings.lease_seconds
            )
        self.live.clear()
        if self._spawned:  # wakes, closes of finished runs' approvals: finish them or give them up
            _, late = await asyncio.wait(set(self._spawned), timeout=max(grace, 1.0))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.store.journal.close()
        if self.activity.http_session is not None:
            await self.activity.http_session.close()
        llm = sys.modules.get("engine.activities.llm")
        if llm is not None:
            await llm.close_clients()

    def drives(self, run_id: str) -> bool:
        """Whether this process may load ``run_id`` (a worker may load any run)."""
        return self.scope is None or run_id in self.scope

    def drive(self, run_id: str) -> None:
        """Let a CLI client drive ``run_id`` (a no-op for a worker, which drives any run)."""
        if self.scope is not None:
            self.scope.add(run_id)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, keeping a reference so it is not collected early."""
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # -- starting and steering runs ------------------------------------------------------------

    async def submit(
        self,
        loaded: LoadedWorkflow,
        raw_inputs: dict[str, Any],
        started_by: str,
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
        drive: bool = True,
    ) -> Started:
        """Validate inputs, store the run pinned to this exact workflow version, and start it (here, or
        with ``drive=False`` in whichever bot process claims it first)."""
        return await starts.submit(self, loaded, raw_inputs, started_by, meta, run_id, drive)

    async def cancel(self, run_id: str, by: str, reason: str = "") -> None:
        """Ask a run to stop; the process running it (maybe another) applies it."""
        await self.deliver(run_id, "cancel", {"by": by, "reason": reason})

    async def rollback(self, run_id: str, by: str, to: str | None = None) -> None:
        """Ask a finished run to compensate its steps (those after ``to`` only, when given)."""
        await self.deliver(run_id, "rollback", {"by": by, "to": to})

    async def rewind(self, run_id: str, by: str, to: str) -> None:
        """Ask a finished run to go back to checkpoint (or step) ``to`` and carry on from there."""
        await self.deliver(run_id, "rewind", {"by": by, "to": to})

    async def rerun(
        self, row: RunRow, step: str, started_by: str, meta: dict[str, Any] | None = None
    ) -> Started:
        """Start a new run, linked to finished run ``row``, that reuses the outputs of the steps before
        ``step``."""
        return await rewinds.rerun(self, row, step, started_by, meta)

    async def retry(self, run_id: str, by: str) -> None:
        """Ask a failed run to run its failed steps again."""
        await self.deliver(run_id, "retry", {"by": by})

    async def decide(
        self,
        approval_id: str,
        actor: str,
        decision: str,
        comment: str | None = None,
        groups: tuple[str, ...] = (),
        source: str = "cli",
        values: dict[str, Any] | None = None,
        aliases: tuple[str, ...] = (),
        name: str | None = None,
        where: dict[str, Any] | None = None,
        background: bool = True,
        link: str | None = None,
        exact: bool = False,
    ) -> Outcome:
        """Decide an approval (``ApprovalStore.decide``); its cards go out now, and a request that settled
        wakes its run: in the background by default, so a click is answered first; before returning
        with ``background=False``, for a caller that follows the run next."""
        claimed: dict[str, Loaded] = {}
        token = _CLAIMING.set(claimed)  # the decision's transaction may claim its run (_claim_decided)
        try:
            outcome = await self.approvals.decide(
                approval_id, actor, decision, comment, groups, source, values, aliases, name, where,
                link, exact,
            )  # fmt: skip
        finally:
            _CLAIMING.reset(token)
        if outcome.run_id in claimed:  # committed: the run's lease is this process's now
            self.decided[outcome.run_id] = (claimed[outcome.run_id], self.drivers_started)
        for hook in self.after_commit:
            hook()  # the outbox: the cards' new versions are committed
        if outcome.resolved and background:
            self.spawn(self.wake(outcome.run_id))
        elif outcome.resolved:
            await self.wake(outcome.run_id)
        return outcome

    async def _claim_decided(self, conn: AsyncConnection, run_id: str) -> None:
        """In a decision's transaction (made through ``decide``): claim the run it settled when this
        process would load it anyway, so its wake skips a transaction of its own (see ``decided``)."""
        claiming = _CLAIMING.get()
        if claiming is None or run_id in self.live or self.stopping:
            return
        if not self.drives(run_id) or claims.room(self) == 0:
            return  # left to whoever claims it, as a wake would leave it
        now = self.clock()
        until = now + self.settings.lease_seconds
        loaded = await self.store.claim_loaded_in(conn, run_id, self.owner, now, until, [])
        if loaded is not None:
            claiming[run_id] = loaded

    async def withdraw(
        self, approval_id: str, actor: str, reason: str | None, source: str = "cli"
    ) -> Outcome:
        """Withdraw a pending request (``ApprovalStore.withdraw``): its cards go out, and its run is woken."""
        request = await self.approvals.get(approval_id)  # an id prefix will do
        outcome = await self.approvals.withdraw(request.id, actor, reason, source)
        for hook in self.after_commit:
            hook()  # the outbox: the request's cards lose their buttons
        await self.wake(outcome.run_id)
        return outcome

    async def deliver(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Store a signal in the run's inbox and wake whoever runs it (loading it here if nobody does)."""
        await self.store.post(run_id, kind, payload, self.clock())
        await self.wake(run_id)

    async def wake(self, run_id: str) -> None:
        """Make the run read its inbox: now if it is loaded here, else by claiming it."""
        live = self.live.get(run_id)
        if live is not None:
            live.poke()
        elif not self.stopping:
            await self.load(run_id)

    async def load(self, run_id: str, dead: list[str] | None = None) -> bool:
        """Claim a run and drive it here; False when another live process holds it."""
        return await starts.load(self, run_id, dead)

    async def resume_all(self) -> list[str]:
        """Load every active run that no live process is working on (up to this process's capacity)."""
        return await leases.resume_all(self)

    async def adopt_claimed(self, claimed: Claimed, since: int | None = None) -> bool:
        """Drive a run a claim pass took (``since``: ``drivers_started`` when the pass began)."""
        return await starts.adopt_claimed(self, claimed, since)

    def work_told(self, run_ids: list[str] | None) -> None:
        """The bell: these runs have mail or may be claimed (None: look at the table)."""
        claims.told(self, run_ids)

    async def handle_timers(self, kind: str, handler: Callable[[int, str], Awaitable[bool]]) -> None:
        """Fire timers of ``kind`` with ``handler(timer_id, ref)``, which marks the timer fired itself;
        returns once the alarm has fired those already due."""
        self.timer_kinds[kind] = handler
        self.alarm.wake()
        await self.alarm.settled()

    async def fire_due(self) -> int:
        """Ring the alarm now and wait for it: every timer due by ``clock()`` is fired (here, or by another
        process); returns how many fired here meanwhile. For a clock that jumps (a test's fake clock): the
        alarm is the only thing that fires timers, so a caller never races it."""
        if not self.alarm.running:
            return await self.claim_and_fire()
        async with self.alarm.asked:  # callers at once each get their own pass, and their own count
            before = self.alarm.fired
            self.alarm.wake()
            await self.alarm.settled()
            return self.alarm.fired - before

    async def claim_and_fire(self) -> int:
        """Fire every due timer in batches (exactly once across processes): run timers at once, the other
        kinds claimed, then fired by their handlers; returns how many fired here. The alarm's one pass."""
        fired = 0
        while len(batch := await fire_run_timers_now(self, self.clock())) == TIMER_BATCH:
            fired += len(batch)
        fired += len(batch)
        while True:
            now, lease = self.clock(), self.settings.lease_seconds
            due = await claim_due(self.alarm.engine, self.owner, now, lease, TIMER_BATCH, other_kinds(self))
            try:
                fired += await fire(self, due)
            except Exception:
                # Give the batch back now rather than when its claims lapse; the alarm tries again soon.
                await release_claims(self.alarm.engine, self.owner, [t.id for t in due])
                raise
            if len(due) < TIMER_BATCH:
                return fired

    def _measure(self, _batch: Batch, state: RunState, rows: list[dict[str, Any]], now: float) -> None:
        self.metrics.observe_run(state, rows, now)  # counted as the batch is built, just before its commit
        for row in rows:
            if row["type"] in ("run_started", "run_finished", "step_failed"):
                log.info(
                    "run %s of %s: %s %s",
                    state.run_id,
                    state.workflow.name,
                    row["type"],
                    row["step_key"] or "",
                )


__all__ = ["Runtime", "Started", "StepStatus", "new_run_id"]
