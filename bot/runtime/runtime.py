"""The runtime: carries out the core's decisions, stores them first, and shares runs between processes.

Every run is driven by one task that applies its signals in batches: the decisions of a batch are
committed together (through the journal) before any effect starts, so a step's start and finish are
durable before anything that depends on them proceeds. A run that only waits (a timer, an approval,
a sub-workflow) is unloaded: it costs a row, not a task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets as pysecrets
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.approvals.store import ApprovalStore
from bot.config import Settings
from bot.owners import is_dead, new_owner
from bot.runtime.alarm import AlarmClock
from bot.runtime.events import EventHub
from bot.runtime.live import LiveRun, merge
from bot.runtime.subworkflows import ChildStarter
from bot.storage.journal import Batch
from bot.storage.runs import RunStore
from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.activities.registry import activity
from engine.core import Core
from engine.durations import format_duration
from engine.inputs import resolve_inputs
from engine.signals import (
    ApprovalDecided,
    Cancel,
    CancelStep,
    Decision,
    Notify,
    RequestApproval,
    Resume,
    Retry,
    Rollback,
    SetTimer,
    Signal,
    Start,
    StartStep,
    StepCompleted,
    StepFailed,
    TimerFired,
)
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepStatus

if TYPE_CHECKING:
    from engine.loader import LoadedWorkflow

log = logging.getLogger(__name__)
Clock = Callable[[], float]
# Adds rows to a run's batch so they commit with its state change: (batch, state, event rows, now).
Observer = Callable[[Batch, RunState, list[dict[str, Any]], float], None]


def new_run_id() -> str:
    """A short, unguessable run id."""
    return pysecrets.token_hex(6)


@dataclass(frozen=True)
class Started:
    """What ``submit`` returns."""

    run_id: str
    digest: str


class Runtime:
    """Runs workflows durably in this process, cooperating with other processes on one database."""

    def __init__(self, settings: Settings, store: RunStore, clock: Clock = time.time) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.owner = new_owner()
        self.live: dict[str, LiveRun] = {}
        self.hub = EventHub()
        self.approvals = ApprovalStore(store.engine, clock)
        self.alarm = AlarmClock(self, settings.timer_horizon)
        self.children = ChildStarter(self)
        self.activity = ActivityContext(
            workflows_dir=settings.workflows_dir, llm=settings.llm(), kill_grace=settings.kill_grace
        )
        self.slots = asyncio.Semaphore(settings.max_parallel_steps)
        self.notify_hooks: list[Callable[[str, Notify], Any]] = []
        self.observers: list[Observer] = []
        # Timers that are not a run's: kind -> handler(timer_id, ref), which marks the timer fired itself.
        self.timer_kinds: dict[str, Callable[[int, str], Awaitable[bool]]] = {}
        self.after_commit: list[Callable[[], None]] = []
        self._specs: dict[str, Workflow] = {}
        self._background: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, resume: bool = True) -> list[str]:
        """Start the journal, the alarm clock and the polling loop; resume unfinished runs."""
        self.store.journal.start()
        resumed = await self.resume_all() if resume else []
        await self.alarm.start()
        self._background.append(asyncio.create_task(self._poll_loop(), name="runtime-poll"))
        self._background.append(asyncio.create_task(self._lease_loop(), name="runtime-leases"))
        return resumed

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let running steps finish within ``grace``, then leave the rest to resume."""
        self._stopping = True
        self.alarm.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        held = list(self.live)  # drivers remove themselves from ``live`` as they end
        # No new steps start now (see _carry_out); give the running ones ``grace`` to finish and be stored.
        deadline = time.monotonic() + grace
        while any(lr.tasks for lr in self.live.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)  # let the drivers store what just finished
        drivers = [lr.driver for lr in self.live.values() if lr.driver is not None]
        for task in drivers:
            task.cancel()  # a step still running stays "running" in storage: resume runs it again
        await asyncio.gather(*drivers, return_exceptions=True)
        for run_id in held:
            await self.store.release(run_id, self.owner)
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
    ) -> Started:
        """Validate inputs, store the run pinned to this exact workflow version, and start it."""
        inputs = resolve_inputs(loaded.spec, raw_inputs)
        now = self.clock()
        run_id = run_id or new_run_id()
        self._specs[loaded.digest] = loaded.spec
        state = RunState(
            run_id,
            loaded.spec,
            inputs,
            started_by=started_by,
            created_at=now,
            meta=dict(meta or {}),
            secrets=_secrets(loaded.spec),
        )
        batch = Batch()
        batch.add(
            self.store.insert_version,
            {
                "digest": loaded.digest,
                "name": loaded.spec.name,
                "path": loaded.path,
                "source": loaded.source,
                "created_at": now,
            },
        )
        self.store.new_run(batch, state, loaded.digest, now, self.owner, now + self.settings.lease_seconds)
        await self.store.journal.write(batch)
        self._adopt(state, loaded.digest, seq=0, mail=False)
        return Started(run_id, loaded.digest)

    async def cancel(self, run_id: str, by: str, reason: str = "") -> None:
        """Ask a run to stop; the process running it (maybe another) applies it."""
        await self.deliver(run_id, "cancel", {"by": by, "reason": reason})

    async def rollback(self, run_id: str, by: str, to: str | None = None) -> None:
        """Ask a finished run to compensate its steps (those after ``to`` only, when given)."""
        await self.deliver(run_id, "rollback", {"by": by, "to": to})

    async def retry(self, run_id: str, by: str) -> None:
        """Ask a failed run to run its failed steps again."""
        await self.deliver(run_id, "retry", {"by": by})

    async def deliver(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Store a signal in the run's inbox and wake whoever runs it (loading it here if nobody does)."""
        await self.store.post(run_id, kind, payload, self.clock())
        await self.wake(run_id)

    async def wake(self, run_id: str) -> None:
        """Make the run read its inbox: now if it is loaded here, else by claiming it."""
        live = self.live.get(run_id)
        if live is not None:
            live.poke()
        elif not self._stopping:
            await self.load(run_id)

    async def resume_all(self) -> list[str]:
        """Load every active run that no live process is working on."""
        dead = await self._dead_owners()
        resumed = []
        for run_id in await self.store.runs_to_resume(self.owner, self.clock(), dead):
            if await self.load(run_id, dead):
                resumed.append(run_id)
        return resumed

    async def fire_due(self) -> int:
        """Fire every timer that is due (each exactly once across processes); returns how many fired here."""
        fired = 0
        for timer_id, _due, kind, ref in await self.store.timers_due_before(self.clock()):
            other = self.timer_kinds.get(kind)
            if other is not None and ref is not None:
                if await other(timer_id, ref):
                    fired += 1
                continue
            if kind.startswith("approval_escalate:") and ref is not None:
                # The approval's business, not the run's: marked fired in the escalation's own transaction.
                rung = int(kind.rpartition(":")[2])
                if await self.approvals.escalate(ref, rung, timer_id=timer_id) is not None:
                    fired += 1
                continue
            won = await self.store.fire_timer(timer_id, self.clock())
            if won is not None:
                fired += 1
                await self.wake(won[0])
        return fired

    # -- loading ---------------------------------------------------------------------------------

    async def load(self, run_id: str, dead: list[str] | None = None) -> bool:
        """Claim a run and drive it here; False when another live process holds it."""
        if run_id in self.live:
            self.live[run_id].poke()
            return True
        now = self.clock()
        if not await self.store.claim(run_id, self.owner, now, now + self.settings.lease_seconds, dead or []):
            return False
        row = await self.store.run_row(run_id)
        if row is None or run_id in self.live:
            return row is not None
        spec = await self._spec(row.digest)
        state = RunState(
            run_id,
            spec,
            row.inputs,
            status=RunStatus(row.status),
            started_by=row.started_by,
            created_at=row.created_at,
            meta=row.meta,
            outputs=row.outputs,
            error=row.error,
            secrets=_secrets(spec),
            cancel_requested=row.cancel_requested,
            rollback_to=row.rollback_to,
            finish_counter=row.finish_counter,
            failed_step=row.failed_step,
        )
        for step in await self.store.step_rows(run_id):
            state.steps[step.key] = step
        for parent in [s for s in state.steps.values() if s.items is not None]:
            for key in state.item_keys(parent.step_id):
                state.step(key)
        if run_id in self.live:  # a concurrent load (a click's wake and the poll loop) adopted it meanwhile
            self.live[run_id].poke()
            return True
        self._adopt(state, row.digest, seq=row.event_seq, mail=True)
        return True

    def _adopt(self, state: RunState, digest: str, seq: int, mail: bool) -> None:
        """Drive a run we hold the lease on: a new one starts, a stored one resumes."""
        core = Core(state)
        core.event_count = seq
        live = LiveRun(core, digest, seq=seq, mail=mail, had_approvals=mail)
        self.live[state.run_id] = live
        if state.status == RunStatus.PENDING:
            live.push(Start())
        elif not state.status.finished:
            live.push(Resume())
        else:
            live.wake.set()
        live.driver = asyncio.create_task(self._drive(live), name=f"run-{state.run_id}")

    async def _spec(self, digest: str) -> Workflow:
        spec = self._specs.get(digest)
        if spec is None:
            source, path = await self.store.source_of(digest)
            from engine.loader import parse_stored  # YAML parsing is needed only for stored versions

            spec = self._specs[digest] = parse_stored(source, path)
        return spec

    async def _dead_owners(self) -> list[str]:
        """Lease holders on this host whose process is gone (so a resume need not wait for expiry)."""
        return [owner for owner in await self.store.lease_owners() if is_dead(owner, self.owner)]

    # -- driving a run ---------------------------------------------------------------------------

    async def _drive(self, live: LiveRun) -> None:
        run_id = live.run_id
        try:
            while not live.lost:
                await live.wake.wait()
                live.wake.clear()
                if live.mail:
                    live.mail = False
                    await self._read_inbox(live)
                signals = live.take()
                if not signals and not live.consumed:
                    if live.parked:
                        break
                    continue
                decision = Decision()
                for signal in signals:
                    merge(decision, live.core.advance(signal, self.clock()))
                state = live.core.state
                done = state.status.finished
                park = done or (
                    not live.tasks
                    and not _starts_work(decision)
                    and not live.signals
                    and state.status == RunStatus.WAITING
                )
                await self._persist(live, decision, release=park)
                self._carry_out(live, decision)
                if park and live.parked:
                    break
                if park:  # something arrived while storing: take the lease back, or leave it to its new owner
                    now = self.clock()
                    if not await self.store.claim(
                        run_id, self.owner, now, now + self.settings.lease_seconds, []
                    ):
                        live.lost = True
        except Exception:
            log.exception("run %s stopped unexpectedly; it will be resumed", run_id)
            await self.store.release(run_id, self.owner)
        finally:
            for task in live.tasks.values():
                task.cancel()
            self.live.pop(run_id, None)
        if not live.lost and not self._stopping and await self.store.inbox_for(run_id):
            await self.load(run_id)  # a signal slipped in while the lease was being released

    async def _read_inbox(self, live: LiveRun) -> None:
        for inbox_id, kind, payload in await self.store.inbox_for(live.run_id, live.inbox_seen):
            live.inbox_seen = max(live.inbox_seen, inbox_id)
            live.consumed.append(inbox_id)
            signal = await self._signal(live, kind, payload)
            if signal is not None:
                live.signals.append(signal)

    async def _signal(self, live: LiveRun, kind: str, p: dict[str, Any]) -> Signal | None:
        if kind == "cancel":
            return Cancel(p.get("by", "?"), p.get("reason", ""))
        if kind == "retry":
            return Retry(p.get("by", "?"))
        if kind == "rollback":
            return Rollback(p.get("by", "?"), p.get("to"))
        if kind == "approval":
            return ApprovalDecided(p["key"], p["outcome"], p.get("outputs", {}), p.get("reason", ""))
        if kind == "child":
            if p["status"] == "succeeded":
                return StepCompleted(p["key"], p["attempt"], p.get("outputs") or {})
            return StepFailed(
                p["key"], p["attempt"], "child", p.get("error") or f"sub-workflow {p['status']}"
            )
        if kind == "timer":
            if p["kind"] == "approval_timeout":
                return await self.approvals.expire(p["ref"])
            return TimerFired(p["key"], p["kind"])
        log.warning("run %s: ignoring unknown inbox signal %r", live.run_id, kind)
        return None

    async def _persist(self, live: LiveRun, d: Decision, release: bool) -> None:
        store, state, now = self.store, live.core.state, self.clock()
        batch = Batch()
        batch.add(store.upsert_step, [store.step_row(state.run_id, state.steps[k]) for k in sorted(d.dirty)])
        rows = []
        for event in d.events:
            live.seq += 1
            rows.append(
                {
                    "run_id": state.run_id,
                    "seq": live.seq,
                    "type": event.type,
                    "step_key": event.key,
                    "data": event.data,
                    "at": now,
                }
            )
        batch.add(store.insert_event, rows)
        for effect in d.effects:
            if isinstance(effect, SetTimer):
                batch.add(
                    store.insert_timer,
                    {
                        "run_id": state.run_id,
                        "step_key": effect.key,
                        "kind": effect.kind,
                        "due_at": effect.due_at,
                    },
                )
            elif isinstance(effect, RequestApproval):
                self.approvals.add_request(batch, state, effect, now)
                live.had_approvals = True
            elif isinstance(effect, StartStep) and effect.kind == "workflow":
                await self.children.prepare(batch, live, effect)
        parent = state.meta.get("parent_run_id")
        if state.status.finished and parent:
            batch.add(
                store.insert_inbox,
                {
                    "run_id": parent,
                    "kind": "child",
                    "created_at": now,
                    "payload": {
                        "key": state.meta["parent_step"],
                        "attempt": state.meta.get("parent_attempt", 1),
                        "status": str(state.status),
                        "outputs": state.outputs,
                        "error": state.error,
                    },
                },
            )
        for observer in self.observers:
            observer(batch, state, rows, now)  # e.g. chat status cards, committed with the state change
        if d.run_changed or release:
            # Most steps change only step rows and events; the run's row waits for a run-level change.
            owner, until = (None, None) if release else (self.owner, now + self.settings.lease_seconds)
            batch.add(store.update_run, store.run_update(state, now, owner, until))
        batch.add(store.consume_inbox, [{"_id": i, "at": now} for i in live.consumed])
        live.consumed = []
        await store.journal.write(batch)
        if rows:
            self.hub.publish(state.run_id, rows)
            for hook in self.after_commit:
                hook()
        if state.status.finished and parent:
            self.spawn(self.wake(parent))
        if state.status.finished and state.status != RunStatus.SUCCEEDED and live.had_approvals:
            # Only a run that did not succeed can end with a request still open (its step was cancelled).
            self.spawn(self.approvals.close_for_run(state.run_id, str(state.status)))

    def _carry_out(self, live: LiveRun, d: Decision) -> None:
        for effect in d.effects:
            if isinstance(effect, StartStep):
                if effect.kind == "workflow":
                    self.children.start(live, effect)
                elif not self._stopping:  # stopping: the step stays stored as started; resume runs it
                    task = asyncio.create_task(self._activity(live, effect))
                    live.tasks[effect.key] = task
                    task.add_done_callback(functools.partial(self._never_ran, live, effect))
            elif isinstance(effect, CancelStep):
                self._cancel_step(live, effect.key)
            elif isinstance(effect, SetTimer):
                self.alarm.arm(effect.due_at)
            elif isinstance(effect, RequestApproval) and effect.timeout:
                self.alarm.arm(self.clock() + effect.timeout)
            elif isinstance(effect, Notify):
                for hook in self.notify_hooks:
                    hook(live.run_id, effect)

    def _never_ran(self, live: LiveRun, effect: StartStep, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first line runs never reports; report the cancel for it.
        if task.cancelled() and effect.key in live.cancelling and not self._stopping:
            live.cancelling.discard(effect.key)
            live.tasks.pop(effect.key, None)
            live.push(
                StepFailed(effect.key, effect.attempt, "cancelled", "cancelled", {}, effect.compensation)
            )

    def _cancel_step(self, live: LiveRun, key: str) -> None:
        task = live.tasks.get(key)
        if task is not None:
            live.cancelling.add(key)
            task.cancel()
            return
        step = live.core.state.steps.get(key)
        if step is not None and step.waiting_on == "child":
            self.spawn(self.children.cancel(live, key))

    async def _activity(self, live: LiveRun, effect: StartStep) -> None:
        state = live.core.state
        call = StepCall(
            run_id=state.run_id,
            step_key=effect.key,
            step_id=effect.step_id,
            attempt=effect.attempt,
            idempotency_key=f"{state.run_id}:{effect.key}" + (":compensate" if effect.compensation else ""),
            kind=effect.kind,
            params=effect.params,
            inputs=state.inputs,
            timeout=effect.timeout,
        )
        signal: Signal
        try:
            async with self.slots:
                async with asyncio.timeout(effect.timeout):
                    result = await activity(effect.kind)(call, self.activity)
            signal = StepCompleted(effect.key, effect.attempt, result, effect.compensation)
        except StepFailure as exc:
            signal = StepFailed(
                effect.key, effect.attempt, exc.kind, exc.message, exc.result, effect.compensation
            )
        except TimeoutError:
            limit = format_duration(effect.timeout or 0)
            signal = StepFailed(
                effect.key, effect.attempt, "timeout", f"timed out after {limit}", {}, effect.compensation
            )
        except asyncio.CancelledError:
            if effect.key not in live.cancelling or self._stopping:
                raise
            live.cancelling.discard(effect.key)
            signal = StepFailed(effect.key, effect.attempt, "cancelled", "cancelled", {}, effect.compensation)
        except Exception as exc:
            ref = pysecrets.token_hex(3)
            log.exception("step %s of run %s failed unexpectedly (ref %s)", effect.key, state.run_id, ref)
            signal = StepFailed(
                effect.key,
                effect.attempt,
                "action",
                f"something went wrong (ref {ref}): {type(exc).__name__}: {exc}",
                {},
                effect.compensation,
            )
        live.tasks.pop(effect.key, None)
        live.push(signal)

    # -- background loops ------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        """A safety net for work other processes hand us: signals, and runs a dead process left."""
        ticks = 0
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                for run_id in await self.store.runs_with_mail():
                    await self.wake(run_id)
                ticks += 1
                if ticks % 10 == 0:
                    await self.resume_all()
            except Exception:
                log.exception("polling for work failed; retrying")

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                lost = await self.store.renew(
                    list(self.live), self.owner, self.clock() + self.settings.lease_seconds
                )
            except Exception:
                log.exception("renewing run leases failed; retrying")
                continue
            for run_id in lost:
                live = self.live.get(run_id)
                if live is not None:
                    log.error("lost the lease on run %s to another process; stopping work on it here", run_id)
                    live.lost = True
                    live.wake.set()


def _secrets(spec: Workflow) -> dict[str, str]:
    return {name: os.environ.get(name, "") for name in spec.secrets}


def _starts_work(d: Decision) -> bool:
    return any(isinstance(e, StartStep) for e in d.effects)


__all__ = ["Runtime", "Started", "StepStatus", "new_run_id"]
