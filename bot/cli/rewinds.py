"""``workflow rewind RUN --to CHECKPOINT|STEP`` and ``workflow rerun RUN --from STEP``.

A rewind is permitted as a rollback is (the starter, an admin, or the workflow's ``rollback`` permission);
a rerun as starting the workflow again is (its ``run`` permission). Both follow the run to its end.
"""

from __future__ import annotations

import argparse

from bot.cli.commands import FINISHED, SUCCESS, _follow, _row
from bot.cli.parity import check_may, person
from bot.cli.progress import Progress
from bot.cli.wiring import open_runtime
from bot.config import Settings
from bot.errors import Conflict
from bot.runtime.events import follow
from bot.runtime.rewinds import rewind_problem
from bot.runtime.runtime import Runtime


async def rewind(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow rewind``: undo what came after a checkpoint, newest first, and go on from there."""
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    async with open_runtime(settings, resume=False, scope=set()) as runtime:
        row = await _row(runtime.store, args.run)
        who = person(settings, args.user, args.group)
        check_may(settings, row, who, "rollback", doing="rewind")
        if row.status not in FINISHED:
            why = "only a finished run can be rewound (cancel it first)"
            raise Conflict(f"run {row.id} is {row.status}; {why}")
        problem = await rewind_problem(runtime, row, args.to)
        if problem is not None:
            raise Conflict(f"cannot rewind run {row.id}: {problem}")
        runtime.drive(row.id)
        await runtime.rewind(row.id, by=who.ref, to=args.to)
        print(f"rewinding run {row.id} to {args.to}", flush=True)
        return await _follow_rewind(runtime, row.id, row.event_seq)


async def rerun(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow rerun``: a new run of the same version and inputs, reusing what came before ``--from``."""
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    async with open_runtime(settings, resume=False, scope=set()) as runtime:
        row = await _row(runtime.store, args.run)
        who = person(settings, args.user, args.group)
        check_may(settings, row, who, "run", doing="rerun")
        started = await runtime.rerun(row, args.from_step, who.ref, {"source": "cli", "who": who.to_dict()})
        progress = Progress()
        progress.header(row.workflow, started.run_id, row.inputs)
        print(f"  rerun of run {row.id} from step {args.from_step}", flush=True)
        return await _follow(runtime, started.run_id, progress, stop_when_parked=False)


async def _follow_rewind(runtime: Runtime, run_id: str, after: int) -> int:
    """Print the rewind's events until the run ends again (or only waits); a refusal is a Conflict."""
    progress = Progress()

    async def waiting() -> bool:
        row = await runtime.store.run_row(run_id)
        return run_id not in runtime.live and row is not None and row.status == "waiting"

    status = None
    async for ev in follow(runtime.hub, runtime.store, run_id, poll=0.1, after_seq=after, idle=waiting):
        if ev.type == "rewind_refused":
            raise Conflict(f"cannot rewind run {run_id}: {ev.data.get('reason')}")
        progress.event(ev)
        if ev.type == "run_finished":
            status = ev.data.get("status")
    if status is None:
        print(f"run {run_id} is waiting; it continues when its timer fires or a decision arrives")
        return 0
    return 0 if status in SUCCESS else 1
