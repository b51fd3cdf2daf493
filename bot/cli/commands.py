"""What each CLI command does; ``bot.cli.main`` parses arguments and maps errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.approvals.store import ApprovalStore
from bot.cli.parity import check_may_retry, form_values, person
from bot.cli.progress import Progress
from bot.cli.wiring import open_database, open_runtime
from bot.config import Settings
from bot.errors import BadInput, Conflict, NotFound
from bot.identity import shown
from bot.owners import is_dead
from bot.runtime.costs import Prices, usage_line
from bot.runtime.events import follow
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from engine.checkpoints import REUSED, is_undone
from engine.durations import format_duration
from engine.inputs import parse_pairs
from engine.loader import WorkflowNotFound, find_workflow, load_dir, load_workflow, validate_paths
from engine.schema import json_schema
from engine.spec import Workflow
from engine.state import StepState
from engine.url_checks import input_host_warnings
from engine.usage import is_llm_step, run_usage

log = logging.getLogger(__name__)
SUCCESS = ("succeeded",)  # compensated, failed and cancelled are not success: the exit code says so
FINISHED = ("succeeded", "failed", "cancelled", "compensated")


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    """``switchboard run``: the long-running process, until SIGTERM or Ctrl-C."""
    from bot.process import start_app, stop_app

    if not settings.workflows_dir.is_dir():
        log.warning(
            "the workflows folder %s does not exist; set SWITCHBOARD_WORKFLOWS_DIR", settings.workflows_dir
        )
    starting = asyncio.ensure_future(start_app(settings, settle_heap=True))
    try:
        app = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # SIGTERM while starting: runs may already be resumed and steps started, so let start-up finish
        # and stop as after it (leases given back), rather than leaving in the middle with them held.
        log.info("stopping as soon as start-up has finished")
        await stop_app(await starting)
        return 0
    if "console" in app.platforms:
        print(f"Console: {app.url}", flush=True)
    if not app.platforms:
        print("No chat platform is configured; runs start with `switchboard workflow run`.", flush=True)
    print("Switchboard is running. Press Ctrl-C to stop.", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        log.info("stopping: no new work is taken; running steps get a few seconds to finish")
    finally:
        await stop_app(app)
    return 0


async def validate(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow validate``: every error as path:line:col: message."""
    paths = args.paths or [settings.workflows_dir]
    bad = 0
    checked = 0
    for path, errors in validate_paths(paths):
        checked += 1
        if errors:
            bad += 1
            for error in errors:
                print(error)
        else:
            print(f"{path}: valid")
            for warning in input_host_warnings(load_workflow(path)):
                print(warning)
            if settings.llm() is None and _has_llm_steps(path):
                print(
                    f"{path}: note: no LLM is configured, so its llm steps will be skipped; "
                    "set OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server) to run them"
                )
    if checked == 0:
        raise BadInput(f"no workflow files (*.yaml, *.yml, *.json) in {', '.join(map(str, paths))}")
    return 2 if bad else 0


async def list_workflows(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow list``: name, inputs and description of each workflow."""
    loaded, errors = load_dir(settings.workflows_dir)
    if not loaded and not errors:
        print(f"no workflows in {settings.workflows_dir}")
    for wf in sorted(loaded, key=lambda w: w.spec.name):
        inputs = " ".join(
            f"{name}=<{spec.type}>" if spec.required else f"[{name}]" for name, spec in wf.spec.inputs.items()
        )
        print(f"{wf.spec.name:<20} {wf.spec.description or ''}")
        if inputs:
            print(f"{'':<20} inputs: {inputs}")
    for error in errors:
        print(f"invalid: {error}", file=sys.stderr)
    return 2 if errors else 0


async def schema(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow schema``: the JSON Schema, for editors."""
    text = json.dumps(json_schema(), indent=2)
    if args.output:
        args.output.write_text(text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


async def run_workflow(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow run``: start a run and follow it to the end."""
    try:
        loaded = load_workflow(find_workflow(settings.workflows_dir, args.target))
        raw = parse_pairs(args.input)
    except WorkflowNotFound as exc:
        raise BadInput(str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    async with open_runtime(settings, resume=False, scope=None if args.worker else set()) as runtime:
        progress = Progress()
        who = person(settings, args.user)
        meta = {"source": "cli", "who": who.to_dict()}
        started = await runtime.submit(loaded, raw, started_by=who.ref, meta=meta, drive=not args.detach)
        row = await runtime.store.run_row(started.run_id)
        assert row is not None
        progress.header(loaded.spec.name, started.run_id, row.inputs)
        if args.detach:
            print(
                f"queued run {started.run_id} for the bot process (`switchboard run`), which starts it; "
                f"follow it with `switchboard workflow status {started.run_id}`"
            )
            return 0
        return await _follow(runtime, started.run_id, progress, stop_when_parked=False)


async def resume(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow resume``: continue unfinished runs here and follow each to its end, as ``run`` does."""
    if not args.all and not args.runs:
        raise BadInput("name the runs to resume, or pass --all")
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    scope = None if args.all else set[str]()
    async with open_runtime(settings, resume=args.all, scope=scope) as runtime:
        await runtime.fire_due()
        if args.runs:
            rows = [await _row(runtime.store, run_id) for run_id in args.runs]
            # A holder on this host that was killed (kill -9, a crash) leaves its lease behind: take it over
            # at once rather than after the lease lapses, as `resume --all` and the bot process do.
            dead = [o for o in await runtime.store.lease_owners() if is_dead(o, runtime.owner)]
            for row in rows:
                runtime.drive(row.id)
                if row.status in FINISHED:
                    raise Conflict(f"run {row.id} already {row.status}; nothing to resume")
                if row.status != "waiting" and not await runtime.load(row.id, dead):
                    raise Conflict(f"run {row.id} is being run by another live process ({row.lease_owner})")
            ids = [row.id for row in rows]
        else:
            waiting = [r.id for r in await runtime.store.list_runs(limit=10_000, status="waiting")]
            ids = list(dict.fromkeys([*runtime.live, *waiting]))
        if not ids:
            print("no unfinished runs to resume")
            return 0
        progress = Progress()
        for run_id in ids:
            if run_id not in runtime.live:
                print(f"run {run_id} is waiting (a timer or an approval); following it")
        # A run retried or rewound has ended before: follow it from its last end, not to that end.
        ends = [await runtime.store.last_seq_of(i, "run_finished") for i in ids]
        codes = await asyncio.gather(
            *(
                _follow(runtime, i, progress, stop_when_parked=args.no_wait, after=end)
                for i, end in zip(ids, ends, strict=True)
            )
        )
        return max(codes)


async def status(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow status``: one run in detail, or the latest runs."""
    async with open_database(settings) as engine:
        store = RunStore(engine)
        if not args.run:
            rows = await store.list_runs(limit=20)
            if args.json:
                _dump([r.__dict__ for r in rows])
            for r in rows if not args.json else []:
                print(
                    f"{r.id}  {r.workflow:<18} {r.status:<12} {_when(r.created_at)}  by {shown(r.started_by)}"
                )
            if not rows and not args.json:
                print("no runs yet")
            return 0
        row = await _row(store, args.run)
        workflow = await _pinned(store, row.digest)
        steps = _in_declared_order(workflow, await store.step_rows(row.id))
        waiting = await ApprovalStore(engine, lambda: 0.0).pending(run_id=row.id)
        used, prices = run_usage(workflow, steps), Prices.from_settings(settings)
        if args.json:
            _dump(
                {
                    "run": row.__dict__,
                    "steps": [s.__dict__ for s in steps],
                    "approvals": [a.__dict__ for a in waiting],
                    "llm": {**used.__dict__, "tokens": used.tokens, "cost": prices.of(used)}
                    | {"currency": prices.currency},
                    **({"events": [e.__dict__ for e in await _events(store, row.id)]} if args.events else {}),
                }
            )
            return 0
        print(
            f"run {row.id}  {row.workflow}  {row.status}  "
            f"started {_when(row.created_at)} by {shown(row.started_by)}"
        )
        if row.meta.get("rerun_of"):
            print(f"  rerun of run {row.meta['rerun_of']} from step {row.meta.get('rerun_from')}")
        if row.inputs:
            print("  inputs: " + ", ".join(f"{k}={v}" for k, v in row.inputs.items()))
        for s in steps:
            took = (
                format_duration((s.finished_at or s.started_at or 0) - (s.started_at or 0))
                if s.started_at
                else ""
            )
            extra = f"  attempt {s.attempt}" if s.attempt > 1 else ""
            extra += "  reused" if s.compensation == REUSED else ""
            word = "↺ undone" if is_undone(s) else s.status
            print(f"  {s.key:<20} {word:<10} {took:>8}{extra}" + (f"  {s.error}" if s.error else ""))
        for a in waiting:
            print(f"  waiting for approval {a.id}: {a.title} ({a.required} needed)")
        if row.error:
            print(f"  error: {row.error}")
        if any(is_llm_step(workflow, s.step_id) for s in steps):
            print(f"  llm: {usage_line(used, prices)}")
        if row.outputs:
            print("  outputs: " + json.dumps(row.outputs, default=str))
        if args.events:
            for ev in await _events(store, row.id):
                key = ev.step_key or ""
                print(f"  {ev.seq:>5} {_when(ev.at)} {ev.type:<24} {key:<16} {json.dumps(ev.data)}")
    return 0


async def cancel(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow cancel``: stop a run wherever it is running, and wait until it has stopped."""
    async with open_runtime(settings, resume=False, scope=set()) as runtime:
        row = await _row(runtime.store, args.run)
        runtime.drive(row.id)
        if row.status in FINISHED:
            raise Conflict(f"run {row.id} already {row.status}")
        await runtime.cancel(row.id, by=person(settings, args.user).ref)
        print(f"cancelling run {row.id}", flush=True)
        deadline = settings.kill_grace + settings.poll_interval + 30
        try:
            async with asyncio.timeout(deadline):
                async for ev in follow(runtime.hub, runtime.store, row.id, poll=0.1, after_seq=row.event_seq):
                    Progress().event(ev)
        except TimeoutError:
            print(
                f"run {row.id} has not stopped yet; the process running it applies the cancel",
                file=sys.stderr,
            )
            return 1
        final = await _row(runtime.store, row.id)
        return 0 if final.status == "cancelled" else 1


async def rollback(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow rollback``: compensate a finished run's steps, newest first."""
    async with open_runtime(settings, resume=False, scope=set()) as runtime:
        row = await _row(runtime.store, args.run)
        runtime.drive(row.id)
        if row.status not in ("succeeded", "failed", "cancelled"):
            raise Conflict(f"run {row.id} is {row.status}; only a finished run can be rolled back")
        await runtime.rollback(row.id, by=person(settings, args.user).ref, to=args.to)
        code = await _follow(
            runtime, row.id, Progress(), stop_when_parked=True, after=row.event_seq, expect=("compensated",)
        )
        for ev in await runtime.store.events_after(row.id, row.event_seq):
            if ev.type == "rollback_refused":
                raise Conflict(f"cannot roll back run {row.id}: {ev.data.get('reason')}")
        return code


async def approvals_list(settings: Settings, args: argparse.Namespace) -> int:
    """``approvals list``: what is waiting for a decision."""
    async with open_database(settings) as engine:
        pending = await ApprovalStore(engine, lambda: 0.0).pending()
    if args.json:
        _dump([a.__dict__ for a in pending])
        return 0
    if not pending:
        print("no approval requests are waiting")
    for a in pending:
        rule = f"{a.required} of {', '.join(a.approvers)}" if a.approvers else f"{a.required} approval(s)"
        expiry = f", expires {_when(a.expires_at)}" if a.expires_at else ""
        print(f"{a.id}  run {a.run_id}  step {a.step_key}: {a.title}  [{rule}{expiry}]")
    return 0


async def decide(settings: Settings, args: argparse.Namespace) -> int:
    """``approvals decide``: record a decision and carry the run on in this process."""
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    async with open_runtime(settings, resume=False, scope=None if args.worker else set()) as runtime:
        request = await runtime.approvals.get(args.id)
        row = await _row(runtime.store, request.run_id)
        # The CLI names people as the console does, so a console user's groups come with the name.
        who = person(settings, args.user, args.group)
        values = await form_values(runtime.approvals.engine, request.id, args.decision, args.field)
        runtime.drive(row.id)
        outcome = await runtime.decide(
            request.id,
            who.ref,
            args.decision,
            args.comment,
            tuple(sorted(who.groups)),
            values=values,
            aliases=(who.user_id,),
            name=f"@{who.name}",
            background=False,
        )
        print(outcome.message)
        if not outcome.resolved:
            return 0
        return await _follow(runtime, outcome.run_id, Progress(), stop_when_parked=True, after=row.event_seq)


async def retry(settings: Settings, args: argparse.Namespace) -> int:
    """``workflow retry``: run a failed run's failed steps again (the status card's Retry button)."""
    async with open_runtime(settings, resume=False, scope=set()) as runtime:
        row = await _row(runtime.store, args.run)
        if row.status != "failed":
            raise Conflict(f"run {row.id} is {row.status}; only a failed run can be retried")
        who = person(settings, args.user, args.group)
        check_may_retry(settings, row, who)
        runtime.drive(row.id)
        await runtime.retry(row.id, by=who.ref)
        print(f"retrying the failed steps of run {row.id}", flush=True)
        return await _follow(runtime, row.id, Progress(), stop_when_parked=True, after=row.event_seq)


async def approvals_expire(settings: Settings, args: argparse.Namespace) -> int:
    """``approvals expire``: withdraw a pending request now (audited); its step is rejected."""
    settings = settings.model_copy(update={"poll_interval": min(settings.poll_interval, 0.25)})
    async with open_runtime(settings, resume=False, scope=None if args.worker else set()) as runtime:
        request = await runtime.approvals.get(args.id)
        row = await _row(runtime.store, request.run_id)
        runtime.drive(row.id)
        outcome = await runtime.withdraw(request.id, person(settings, args.user).ref, args.comment)
        print(outcome.message)
        ended = ("succeeded", "failed", "cancelled", "compensated")  # the withdrawal itself worked
        return await _follow(
            runtime, row.id, Progress(), stop_when_parked=True, after=row.event_seq, expect=ended
        )


async def db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    """``db upgrade``: apply migrations."""
    engine = create_engine(settings.database_url)
    try:
        found, reached = await migrate(engine)
    finally:
        await engine.dispose()
    if found is None:
        print(f"created the database schema (revision {reached})")
    elif found != reached:
        print(f"upgraded the database from revision {found} to {reached}")
    else:
        print(f"the database is up to date (revision {reached})")
    return 0


async def _follow(
    runtime: Runtime,
    run_id: str,
    progress: Progress,
    stop_when_parked: bool,
    after: int = 0,
    expect: tuple[str, ...] = SUCCESS,
) -> int:
    async def parked() -> bool:
        if run_id in runtime.live:
            return False
        row = await runtime.store.run_row(run_id)
        return row is not None and (
            row.status == "waiting" or (stop_when_parked and row.lease_owner is not None)
        )

    last_status = None
    async for ev in follow(
        runtime.hub,
        runtime.store,
        run_id,
        poll=0.1,
        after_seq=after,
        idle=parked if stop_when_parked else None,
    ):
        progress.event(ev)
        if ev.type == "run_finished":
            last_status = ev.data.get("status")
    if last_status is None:
        row = await runtime.store.run_row(run_id)
        if row is not None and row.status == "waiting":
            print(
                f"run {run_id} is waiting; it continues when its timer fires or a decision arrives "
                "(`switchboard workflow resume --all` or `switchboard run`)"
            )
        return 0
    return 0 if last_status in expect else 1


async def _events(store: RunStore, run_id: str) -> list[Any]:
    return list(await store.events_after(run_id, 0, limit=100_000))


async def _row(store: RunStore, run_id: str) -> Any:
    row = await store.run_row(run_id)
    if row is None:
        raise NotFound(f"No run {run_id!r}; `switchboard workflow status` lists recent runs")
    return row


async def _pinned(store: RunStore, digest: str) -> Workflow:
    from engine.loader import parse_stored

    source, path = await store.source_of(digest)
    return parse_stored(source, path)


def _in_declared_order(workflow: Workflow, steps: list[StepState]) -> list[StepState]:
    rank = {sid: i for i, sid in enumerate(workflow.steps)}
    return sorted(steps, key=lambda s: (rank.get(s.step_id, len(rank)), s.index or 0))


def _has_llm_steps(path: Path) -> bool:
    return any(step.kind == "llm" for step in load_workflow(path).spec.steps.values())


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dump(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
