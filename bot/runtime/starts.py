"""Putting a run in this process's hands: a new run submitted, or a stored one claimed and rebuilt."""

from __future__ import annotations

import asyncio
import secrets as pysecrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.runtime import orphans, remote
from bot.runtime.claims import exclusion_group, room
from bot.runtime.driver import drive
from bot.runtime.live import LiveRun
from bot.runtime.quarantine import crashed_too_often, quarantine
from bot.runtime.queue_cards import capacity_card, draw_queue
from bot.storage import redaction
from bot.storage.journal import Batch
from bot.storage.leases import Claimed, Loaded
from engine.core import Core
from engine.inputs import resolve_inputs
from engine.signals import Interruption, Resume, Start
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepState

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime
    from engine.loader import LoadedWorkflow


def new_run_id() -> str:
    """A short, unguessable run id."""
    return pysecrets.token_hex(6)


@dataclass(frozen=True)
class Started:
    """What ``submit`` returns."""

    run_id: str
    digest: str


async def submit(
    rt: Runtime,
    loaded: LoadedWorkflow,
    raw_inputs: dict[str, Any],
    started_by: str,
    meta: dict[str, Any] | None = None,
    run_id: str | None = None,
    drive: bool = True,
    reuse: list[StepState] | None = None,
) -> Started:
    """Validate inputs, store the run pinned to this exact workflow version, and start it.

    ``reuse`` (a rerun, bot/runtime/reruns.py) are steps stored finished with the new run, in its one
    commit, so a crash before its start loses none of them and they never run in it.

    With ``drive=False`` the run is stored unclaimed, for a bot process to pick up (``--detach``): this
    process never starts a step it would have to abandon on exit. A run of an exclusion group, or one
    this process has no room for, is stored unclaimed too, and claimed when its turn comes (here or by
    any process with room).
    """
    inputs = resolve_inputs(loaded.spec, raw_inputs)
    group = exclusion_group(loaded.spec, inputs)
    now = rt.clock()
    run_id = run_id or new_run_id()
    rt.specs[loaded.digest] = loaded.spec
    state = RunState(
        run_id,
        loaded.spec,
        inputs,
        started_by=started_by,
        created_at=now,
        meta=dict(meta or {}),
        secrets=_secrets(loaded.spec),
    )
    for step in reuse or []:
        state.steps[step.key] = step
        state.finish_counter = max(state.finish_counter, step.finish_seq)
    batch = Batch()
    batch.add(
        rt.store.insert_version,
        {
            "digest": loaded.digest,
            "name": loaded.spec.name,
            "path": loaded.path,
            "source": loaded.source,
            "created_at": now,
        },
    )
    here = drive and group is None and room(rt) > 0
    if drive and rt.scope is not None:
        rt.scope.add(run_id)
    if here:
        rt.store.new_run(batch, state, loaded.digest, now, rt.owner, now + rt.settings.lease_seconds)
    else:
        rt.store.new_run(batch, state, loaded.digest, now, None, now, exclusive=group)
        batch.work.append(run_id)  # every process with room hears of it at commit
        if drive and group is None:
            capacity_card(rt, batch, state, now)  # this process is full; one with room takes it
    batch.add(rt.store.upsert_step, [rt.store.step_row(run_id, s) for s in reuse or []])
    async with rt.locks.hold(run_id):  # a resume pass must not load it while it is being stored
        await rt.store.journal.write(batch)
    if group is not None:
        await draw_queue(rt, group)  # its place in line, unless its turn has come
    if here:
        adopt(rt, state, loaded.digest, seq=0, mail=False)
    elif drive:
        await rt.load(run_id)  # its turn may have come (or another process took it already)
    return Started(run_id, loaded.digest)


async def load(rt: Runtime, run_id: str, dead: list[str] | None = None) -> bool:
    """Claim a run and drive it here; False when another live process holds it, or this one may not.

    Loads of one run are serialised (a click's wake, the poll loop and a driver's last look can ask at
    once), so a run is loaded at most once per process; a later one finds it live and pokes it, or finds
    that a driver started after it asked (and so read the mail it was asked for) and is done already.
    """
    asked = rt.drivers_started
    decided = rt.decided.pop(run_id, None)  # claimed and read by the decision that settled it
    if run_id in rt.live:
        rt.live[run_id].poke()
        return True
    if rt.stopping or not rt.drives(run_id):
        return False
    if room(rt) == 0:
        rt.work_waiting = True  # at capacity: a process with room takes it (told by the bell), or we later
        return False
    async with rt.locks.hold(run_id):
        if run_id in rt.live:
            rt.live[run_id].poke()
            return True
        if rt.driver_starts.get(run_id, -1) > asked:
            return True  # driven here since this load was asked for, and parked again: nothing left to read
        now = rt.clock()
        # The claim's transaction reads the run back too (its row, steps and mail): one round of the
        # database between a click's decision and the run's next step, not four; none when the
        # decision's own transaction claimed it.
        until = now + rt.settings.lease_seconds
        if decided is not None and rt.driver_starts.get(run_id, -1) <= decided[1]:
            loaded: Loaded | None = decided[0]  # no driver of it started here since: still as read
        else:
            loaded = await rt.store.claim_loaded(run_id, rt.owner, now, until, dead or [])
        if loaded is None:
            return False
        return await _rebuild(rt, loaded.claimed, loaded)


async def adopt_claimed(rt: Runtime, claimed: Claimed, since: int | None = None) -> bool:
    """Drive a run a claim pass took (a poke if a wake of this process loaded it meanwhile).

    The claim may be stale. The pass lists the runs it drives before its claim statement runs, so a
    driver started in between (a wake loaded the run, before or after the statement took it) was not
    excluded, and that driver may have parked and given the lease back since. A driver started from such
    a claim would hold no lease. So when a driver of the run started since the pass began (``since``, a
    count of ``drivers_started``), or the claim took a run this process already held, it is made again
    here, under the run's lock and with the pass's conditions, before a driver is started: a parked run
    with no mail is left parked, and one that another process took meanwhile is left to it.
    """
    async with rt.locks.hold(claimed.run_id):
        if claimed.run_id in rt.live:
            rt.live[claimed.run_id].poke()
            return True
        started_since = since is not None and rt.driver_starts.get(claimed.run_id, -1) > since
        if started_since or claimed.was == rt.owner:
            now = rt.clock()
            until = now + rt.settings.lease_seconds
            again = await rt.store.claim_batch(rt.owner, now, until, [], 1, list(rt.live), [claimed.run_id])
            if not again:
                return False
            claimed = again[0]
        return await _rebuild(rt, claimed)


async def _rebuild(rt: Runtime, claimed: Claimed, loaded: Loaded | None = None) -> bool:
    """Rebuild a claimed run's state from storage (read already when ``loaded``) and drive it here."""
    run_id = claimed.run_id
    if claimed.taken_over(rt.owner):
        rt.metrics.lease_takeovers.inc()
    row = loaded.row if loaded is not None else await rt.store.run_row(run_id)
    if row is None:
        return False
    spec = await _spec(rt, row.digest)
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
        rewind_to=row.rewind_to,
        finish_counter=row.finish_counter,
        failed_step=row.failed_step,
    )
    for step in loaded.steps if loaded is not None else await rt.store.step_rows(run_id):
        state.steps[step.key] = step
    for parent in [s for s in state.steps.values() if s.items is not None]:
        for key in state.item_keys(parent.step_id):
            state.step(key)
    if crashed_too_often(rt, row.load_attempts, row.status):
        await quarantine(rt, state, row.load_attempts, row.event_seq)
        return True
    interrupted, handled = await orphans.settle(rt, state)  # before any step can run again
    lost, attached = await remote.reattach(rt, state)
    interrupted += lost
    if run_id in rt.live:  # a concurrent load (a click's wake and the poll loop) adopted it meanwhile
        rt.live[run_id].poke()
        return True
    adopt(
        rt,
        state,
        row.digest,
        seq=row.event_seq,
        mail=True,
        interrupted=interrupted,
        handled=handled,
        attached=attached,
    )
    rt.live[run_id].attempts = row.load_attempts
    if loaded is not None:
        rt.live[run_id].mailed = loaded.mail  # read in the claim's transaction: the driver's first look
    return True


def adopt(
    rt: Runtime,
    state: RunState,
    digest: str,
    seq: int,
    mail: bool,
    interrupted: tuple[Interruption, ...] = (),
    handled: list[dict[str, Any]] | None = None,
    attached: tuple[str, ...] = (),
) -> None:
    """Drive a run we hold the lease on: a new one starts, a stored one resumes."""
    core = Core(state)
    core.event_count = seq
    live = LiveRun(core, digest, seq=seq, mail=mail, had_approvals=mail, ending=list(handled or []))
    rt.live[state.run_id] = live
    if state.status == RunStatus.PENDING:
        live.push(Start())
    elif not state.status.finished:
        live.push(Resume(interrupted, attached))
    else:
        live.wake.set()
    live.driver = asyncio.create_task(drive(rt, live), name=f"run-{state.run_id}")
    rt.drivers_started += 1
    rt.driver_starts[state.run_id] = rt.drivers_started
    rt.metrics.drivers_started.inc()


async def _spec(rt: Runtime, digest: str) -> Workflow:
    spec = rt.specs.get(digest)
    if spec is None:
        source, path = await rt.store.source_of(digest)
        from engine.loader import parse_stored  # YAML parsing is needed only for stored versions

        spec = rt.specs[digest] = parse_stored(source, path)
    return spec


def _secrets(spec: Workflow) -> dict[str, str]:
    return redaction.read(spec)  # every write of this process masks them from now on
