"""The buttons of a run's status card: Cancel, Retry failed step, Rollback; the REST API steers through
``steer`` too, so a run obeys one set of rules wherever the request comes from."""

from __future__ import annotations

from bot.errors import BadInput, Conflict, NotFound
from bot.identity import Identity, Place
from handlers.services import Services
from handlers.types import Click, Reply, Say
from handlers.workflow import FINISHED, cancel_run, check_may_steer

CHOICES = ("cancel", "retry", "rollback")


async def run_button(click: Click, run_id: str, choice: str, svc: Services) -> Reply:
    """Apply a status-card button, or explain why the button no longer applies."""
    if choice not in CHOICES:
        raise BadInput(f"This button ({choice}) is not one Switchboard knows.")
    return Say(await steer(svc, run_id, choice, click.who, click.where, missing="Run {} no longer exists."))


async def steer(
    svc: Services,
    run_ref: str,
    choice: str,
    who: Identity,
    where: Place,
    to: str | None = None,
    missing: str = "No run {}",
) -> str:
    """Cancel, retry or roll back a run if ``who`` may and its state allows; returns what was done.

    A request the run's state does not allow raises ``Conflict`` with the reason; one ``who`` may not make
    raises ``NotPermitted`` naming who may.
    """
    row = await svc.runtime.store.run_row(run_ref)
    if row is None:
        raise NotFound(missing.format(run_ref))
    if choice == "cancel":
        return (await cancel_run(svc, row.id, who, where)).plain_text()
    if choice == "retry":
        if row.status != "failed":
            raise Conflict(f"Run {row.id} is {row.status}; only a failed run can be retried.")
        check_may_steer(svc, row.workflow, row.started_by, "run", who, where)
        await svc.runtime.retry(row.id, by=who.ref)
        return f"Retrying the failed steps of run {row.id}."
    if choice == "rollback":
        if row.status not in FINISHED or row.status == "compensated":
            raise Conflict(
                f"Run {row.id} is {row.status}; only a finished run that was not rolled back can be."
            )
        check_may_steer(svc, row.workflow, row.started_by, "rollback", who, where)
        await svc.runtime.rollback(row.id, by=who.ref, to=to)
        return f"Rolling back run {row.id}: compensating its steps, newest first."
    raise BadInput(f"'{choice}' is not something a run can be asked to do; use one of {', '.join(CHOICES)}.")
