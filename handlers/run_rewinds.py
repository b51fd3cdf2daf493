"""``/workflow rewind RUN CHECKPOINT`` and ``/workflow rerun RUN STEP``: what the CLI's rewind and rerun
do, from chat, under the same rules (a rewind as a rollback; a rerun as starting the workflow)."""

from __future__ import annotations

from bot.errors import BadInput, NotFound
from bot.runtime.rewinds import rerun
from handlers.run_actions import steer
from handlers.services import Services
from handlers.types import Command, Reply, Say
from handlers.workflow import check_may_steer


def _two(args: list[str], flag: str, usage: str) -> tuple[str, str]:
    """``RUN X`` or ``RUN --flag X``."""
    words = [a for a in args if a != flag]
    if len(words) != 2:
        raise BadInput(f"Usage: `{usage}`")
    return words[0], words[1]


async def rewind_command(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow rewind RUN CHECKPOINT``: undo what came after it, newest first, and go on from there."""
    run_ref, to = _two(args, "--to", "/workflow rewind RUN CHECKPOINT")
    return Say(await steer(svc, run_ref, "rewind", cmd.who, cmd.where, to=to))


async def rerun_command(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow rerun RUN STEP``: a linked new run that reuses the outputs of the steps before STEP."""
    run_ref, step = _two(args, "--from", "/workflow rerun RUN STEP")
    row = await svc.runtime.store.run_row(run_ref)
    if row is None:
        raise NotFound(f"No run {run_ref}")
    check_may_steer(svc, row.workflow, row.started_by, "run", cmd.who, cmd.where, doing="rerun")
    meta = {"origin": cmd.where.to_dict(), "who": cmd.who.to_dict()}
    started = await rerun(svc.runtime, row, step, cmd.who.ref, meta)
    return Say(
        f"Started {row.workflow} (run {started.run_id}), a rerun of run {row.id} from step {step}; "
        "the steps before it keep their outputs. Its status card follows."
    )
