"""``/workflow``: run, list, help, status, cancel, rewind and rerun."""

from __future__ import annotations

import difflib
import shlex

from bot.errors import BadInput, Conflict, NotFound
from bot.identity import Identity, Place, allowed, describe
from bot.runtime.catalog import check_may_run
from bot.runtime.catalog import check_steer_permissions as check_steer_permissions
from bot.runtime.dag_posts import dashboard_link, post_dag
from bot.runtime.run_views import view_from_store
from cards.model import Card, Field
from cards.run_card import run_card
from engine.inputs import InputError, parse_pairs, resolve_inputs
from engine.loader import LoadedWorkflow
from handlers.run_form import missing_only, run_form
from handlers.services import Services
from handlers.types import Command, Reply, Say, ShowForm

USAGE = (
    "Usage: `/workflow run NAME key=value ...`, `/workflow list`, `/workflow help [NAME]`, "
    "`/workflow status [RUN]`, `/workflow cancel RUN`, `/workflow rewind RUN CHECKPOINT`, "
    "`/workflow rerun RUN STEP`"
)
FINISHED = ("succeeded", "failed", "cancelled", "compensated")


async def workflow_command(cmd: Command, svc: Services) -> Reply:
    """Dispatch ``/workflow <subcommand> ...``."""
    try:
        words = shlex.split(cmd.text)
    except ValueError as exc:
        raise BadInput(f"Could not read that command ({exc}); check the quotes") from None
    if not words:
        return Say(USAGE)
    sub, args = words[0].lower(), words[1:]
    handler = SUBCOMMANDS.get(sub)
    if handler is None:
        close = difflib.get_close_matches(sub, list(SUBCOMMANDS), n=1)
        hint = f"Did you mean `/workflow {close[0]}`? " if close else ""
        raise BadInput(f"/workflow has no subcommand '{sub}'. {hint}{USAGE}")
    return await handler(cmd, args, svc)


async def run(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow run NAME key=value ...``: start it, or open a form for missing inputs."""
    if not args:
        raise BadInput("Which workflow? " + USAGE)
    loaded = svc.catalog.find(args[0])
    check_may_run(loaded, cmd.who, cmd.where)
    try:
        raw = parse_pairs(args[1:])
    except ValueError as exc:
        raise BadInput(f"{exc}: give inputs as name=value, e.g. env=staging") from None
    try:
        resolve_inputs(loaded.spec, raw)
    except InputError as exc:
        if missing_only(exc):
            return ShowForm(run_form(loaded, raw))
        problems = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
        raise BadInput(f"Nothing started. {loaded.spec.name} inputs: {problems}") from None
    return await start(svc, loaded, raw, cmd.who, cmd.where)


async def start(
    svc: Services, loaded: LoadedWorkflow, raw: dict[str, str], who: Identity, where: Place
) -> Say:
    """Submit a run whose status card goes to ``where``."""
    meta = {"origin": where.to_dict(), "who": who.to_dict()}
    started = await svc.runtime.submit(loaded, raw, started_by=who.ref, meta=meta)
    return Say(f"Started {loaded.spec.name} (run {started.run_id}); its status card follows.")


async def list_(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow list``: the workflows this user may run."""
    mine = [w for w in svc.workflows() if allowed(w.spec.permissions.run, cmd.who, cmd.where)]
    if not mine:
        return Say("There are no workflows you may run here.")
    fields = tuple(Field(w.spec.name, w.spec.description or "(no description)", short=False) for w in mine)
    return Say(
        card=Card(title="Workflows you can run", fields=fields, context=("/workflow help NAME shows inputs",))
    )


async def help_(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow help [NAME]``: usage, or a workflow's typed inputs."""
    if not args:
        return Say(USAGE)
    loaded = svc.catalog.find(args[0])
    spec = loaded.spec
    fields = []
    for name, inp in spec.inputs.items():
        kind = f"one of {', '.join(map(str, inp.enum))}" if inp.enum else inp.type
        notes = [
            "required"
            if inp.required
            else f"default {inp.default}"
            if inp.default is not None
            else "optional"
        ]
        text = f"{kind}; {', '.join(notes)}" + (f" — {inp.description}" if inp.description else "")
        fields.append(Field(name, text, short=False))
    example = " ".join(f"{n}=…" for n, i in spec.inputs.items() if i.required)
    return Say(
        card=Card(
            title=f"/workflow run {spec.name} {example}".strip(),
            text=spec.description or "",
            fields=tuple(fields),
            context=(f"Allowed to run: {describe(spec.permissions.run)}",),
        )
    )


async def status(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow status [RUN]``: a run's card, or this user's recent runs."""
    store = svc.runtime.store
    if args:
        view = await view_from_store(store, args[0], svc.runtime.clock())
        if view is None:
            raise NotFound(f"No run {args[0]}; `/workflow status` lists your recent runs")
        public = svc.settings.public_url
        if await post_dag(store, view.run_id, public, svc.now()):  # the picture goes in the run's thread
            for hook in svc.runtime.after_commit:
                hook()  # the outbox: a post is queued
        return Say(card=run_card(view, dashboard_link(public, view.run_id)))
    mine = [r for r in await store.list_runs(limit=200) if r.started_by == cmd.who.ref][:10]
    if not mine:
        return Say("You have not started any runs yet. Try `/workflow list`.")
    lines = "\n".join(f"`{r.id}` {r.workflow} — {r.status}" for r in mine)
    return Say(f"Your recent runs:\n{lines}")


async def cancel(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow cancel RUN``."""
    if not args:
        raise BadInput("Which run? Usage: `/workflow cancel RUN`")
    return await cancel_run(svc, args[0], cmd.who, cmd.where)


async def cancel_run(svc: Services, run_ref: str, who: Identity, where: Place) -> Say:
    """Cancel a run if ``who`` may; shared by the command and the Cancel button."""
    row = await svc.runtime.store.run_row(run_ref)
    if row is None:
        raise NotFound(f"No run {run_ref}")
    if row.status in FINISHED:  # a stale button: the reply says so (Conflict is shown as the reply)
        raise Conflict(f"Run {row.id} already {row.status}; there is nothing to cancel.")
    check_may_steer(svc, row.workflow, row.started_by, "cancel", who, where)
    await svc.runtime.cancel(row.id, by=who.ref)
    return Say(f"Cancelling run {row.id} ({row.workflow}).")


def check_may_steer(
    svc: Services,
    workflow: str,
    started_by: str,
    what: str,
    who: Identity,
    where: Place,
    doing: str | None = None,
) -> None:
    """Cancel, rollback, rewind, retry: the starter, admins, and whoever the workflow's permissions name
    (``bot.runtime.catalog.Catalog.check_may_steer``)."""
    svc.catalog.check_may_steer(workflow, started_by, what, who, where, doing)


async def rewind(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow rewind RUN CHECKPOINT`` (handlers/run_rewinds.py)."""
    from handlers.run_rewinds import rewind_command  # it imports this module

    return await rewind_command(cmd, args, svc)


async def rerun(cmd: Command, args: list[str], svc: Services) -> Reply:
    """``/workflow rerun RUN STEP`` (handlers/run_rewinds.py)."""
    from handlers.run_rewinds import rerun_command  # it imports this module

    return await rerun_command(cmd, args, svc)


SUBCOMMANDS = {
    "run": run,
    "list": list_,
    "help": help_,
    "status": status,
    "cancel": cancel,
    "rewind": rewind,
    "rerun": rerun,
}
