"""The buttons of a run's status card: Cancel, Retry failed step, Rollback."""

from __future__ import annotations

from bot.errors import BadInput, NotFound
from handlers.services import Services
from handlers.types import Click, Reply, Say
from handlers.workflow import FINISHED, cancel_run, check_may_steer


async def run_button(click: Click, run_id: str, choice: str, svc: Services) -> Reply:
    """Apply a status-card button, or explain why the button no longer applies."""
    store = svc.runtime.store
    row = await store.run_row(run_id)
    if row is None:
        raise NotFound(f"Run {run_id} no longer exists.")
    if choice == "cancel":
        return await cancel_run(svc, row.id, click.who, click.where)
    if choice == "retry":
        if row.status != "failed":
            return Say(f"Run {row.id} is {row.status}; only a failed run can be retried.")
        check_may_steer(svc, row.workflow, row.started_by, "run", click.who, click.where)
        await svc.runtime.retry(row.id, by=click.who.ref)
        return Say(f"Retrying the failed steps of run {row.id}.")
    if choice == "rollback":
        if row.status not in FINISHED or row.status == "compensated":
            return Say(f"Run {row.id} is {row.status}; only a finished run that was not rolled back can be.")
        check_may_steer(svc, row.workflow, row.started_by, "rollback", click.who, click.where)
        await svc.runtime.rollback(row.id, by=click.who.ref)
        return Say(f"Rolling back run {row.id}: compensating its steps, newest first.")
    raise BadInput(f"This button ({choice}) is not one Switchboard knows.")
