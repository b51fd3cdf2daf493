"""The buttons of a run's status card: Cancel, Retry failed step, Rewind to …, Rollback; the REST API
steers through ``steer`` too, so a run obeys one set of rules wherever the request comes from."""

from __future__ import annotations

from bot.errors import BadInput, Conflict, NotFound
from bot.identity import Identity, Place
from bot.runtime.rewinds import rewind_problem
from handlers.services import Services
from handlers.types import Click, Reply, Say
from handlers.workflow import FINISHED, cancel_run, check_may_steer

CHOICES = ("cancel", "retry", "rollback", "rewind")


async def run_button(click: Click, run_id: str, choice: str, svc: Services) -> Reply:
    """Apply a status-card button, or explain why the button no longer applies.

    A "Rewind to …" button's choice is ``rewind.NAME``: checkpoint names hold no dots (engine/spec.py).
    """
    choice, _, to = choice.partition(".")
    if choice not in CHOICES or (choice == "rewind") != bool(to):
        raise BadInput(f"This button ({choice}) is not one Switchboard knows.")
    where = click.where
    missing = "Run {} no longer exists."
    return Say(await steer(svc, run_id, choice, click.who, where, to=to or None, missing=missing))


async def steer(
    svc: Services,
    run_ref: str,
    choice: str,
    who: Identity,
    where: Place,
    to: str | None = None,
    missing: str = "No run {}",
) -> str:
    """Cancel, retry, roll back or rewind a run if ``who`` may and its state allows; returns what was done.

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
    if choice == "rewind":
        if not to:
            raise BadInput("Rewind to which checkpoint? Name one, or a step that succeeded.")
        if row.status not in FINISHED:
            raise Conflict(f"Run {row.id} is {row.status}; only a finished run can be rewound.")
        check_may_steer(svc, row.workflow, row.started_by, "rollback", who, where, doing="rewind")
        problem = await rewind_problem(svc.runtime, row, to)
        if problem is not None:
            raise Conflict(f"Run {row.id} cannot be rewound: {problem}.")
        await svc.runtime.rewind(row.id, by=who.ref, to=to)
        return (
            f"Rewinding run {row.id} to {to}: undoing the steps after it, newest first, "
            "then going on from there."
        )
    raise BadInput(f"'{choice}' is not something a run can be asked to do; use one of {', '.join(CHOICES)}.")
