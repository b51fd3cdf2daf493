"""The ``switchboard`` command line: the bot process, workflows, approvals and the database."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bot.cli.logs import configure_logging
from bot.config import Settings, load_settings
from bot.errors import SwitchboardError
from bot.tokens import SCOPES
from engine.inputs import InputError
from engine.loader import WorkflowError, WorkflowInvalid

Handler = Callable[[Settings, argparse.Namespace], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """Every command and option. A command's handler is named ``module:function`` and imported only when
    that command runs, so a command loads only what it needs (no chat platform code for `workflow resume`)."""
    me = getpass.getuser()
    parser = argparse.ArgumentParser(prog="switchboard", description="Chat-ops workflows with durable runs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start the bot process (resumes unfinished runs)")
    run.set_defaults(handler="bot.cli.commands:serve")

    wf = sub.add_parser("workflow", help="validate, run and manage workflows").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = wf.add_parser("validate", help="check workflow files (default: the workflows folder)")
    p.add_argument("paths", nargs="*", type=Path)
    p.set_defaults(handler="bot.cli.commands:validate")
    p = wf.add_parser("list", help="list the workflows in the workflows folder")
    p.set_defaults(handler="bot.cli.commands:list_workflows")
    p = wf.add_parser("schema", help="print the JSON Schema of the workflow format")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    p.set_defaults(handler="bot.cli.commands:schema")
    p = wf.add_parser("run", help="run a workflow by name or path, showing live progress")
    p.add_argument("target", help="a workflow name (found in the workflows folder) or a file path")
    p.add_argument(
        "-i", "--input", action="append", default=[], metavar="NAME=VALUE", help="an input (repeatable)"
    )
    p.add_argument("--as", dest="user", default=me, help=f"who starts the run (default: {me})")
    p.add_argument("--detach", action="store_true", help="start the run and return at once")
    p.add_argument(
        "--worker",
        action="store_true",
        help="also work on other runs and timers while this command runs (default: only this run)",
    )
    p.set_defaults(handler="bot.cli.commands:run_workflow")
    p = wf.add_parser("resume", help="continue unfinished runs after a crash or restart")
    p.add_argument("runs", nargs="*", help="run ids (or use --all)")
    p.add_argument("--all", action="store_true", help="every unfinished run")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the runs only wait (for a timer or an approval) instead of following them",
    )
    p.set_defaults(handler="bot.cli.commands:resume")
    p = wf.add_parser("status", help="show a run (or the latest runs)")
    p.add_argument("run", nargs="?", help="a run id or unique prefix")
    p.add_argument("--events", action="store_true", help="also print the run's timeline")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler="bot.cli.commands:status")
    p = wf.add_parser("cancel", help="cancel a run (running steps get SIGTERM, then SIGKILL)")
    p.add_argument("run")
    p.add_argument("--as", dest="user", default=me)
    p.set_defaults(handler="bot.cli.commands:cancel")
    p = wf.add_parser("rollback", help="run the compensations of a finished run's steps, newest first")
    p.add_argument("run")
    p.add_argument("--to", metavar="STEP", help="undo only what finished after this step")
    p.add_argument("--as", dest="user", default=me)
    p.set_defaults(handler="bot.cli.commands:rollback")
    p = wf.add_parser("rewind", help="undo what came after a checkpoint, newest first, and go on from there")
    p.add_argument("run")
    p.add_argument("--to", metavar="CHECKPOINT", required=True, help="a checkpoint's name, or a step id")
    p.add_argument("--as", dest="user", default=me, help=f"who rewinds (default: {me})")
    p.add_argument("--group", action="append", default=[], help="a group the person belongs to (repeatable)")
    p.set_defaults(handler="bot.cli.rewinds:rewind")
    p = wf.add_parser("rerun", help="start a linked new run that reuses the outputs of the steps before one")
    p.add_argument("run")
    p.add_argument("--from", dest="from_step", metavar="STEP", required=True, help="the first step to run")
    p.add_argument("--as", dest="user", default=me, help=f"who starts it (default: {me})")
    p.add_argument("--group", action="append", default=[], help="a group the person belongs to (repeatable)")
    p.set_defaults(handler="bot.cli.rewinds:rerun")
    p = wf.add_parser("retry", help="run a failed run's failed steps again (the card's Retry button)")
    p.add_argument("run")
    p.add_argument("--as", dest="user", default=me, help=f"who retries (default: {me})")
    p.add_argument("--group", action="append", default=[], help="a group the person belongs to (repeatable)")
    p.set_defaults(handler="bot.cli.commands:retry")

    ap = sub.add_parser("approvals", help="list, decide and audit approval requests").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = ap.add_parser("list", help="requests waiting for a decision")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="bot.cli.commands:approvals_list")
    p = ap.add_parser("decide", help="approve or reject a request, and resume its run")
    p.add_argument("id")
    p.add_argument(
        "decision",
        choices=["approve", "reject", "changes"],
        help="changes sends the work back to the step's 'revise:' (give the feedback with --comment)",
    )
    p.add_argument("--comment", "-m")
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a field of a form approval (repeatable); its required fields must be given to approve",
    )
    p.add_argument("--as", dest="user", default=me, help=f"who decides (default: {me})")
    p.add_argument(
        "--group",
        action="append",
        default=[],
        help="a group the decider belongs to, besides their SWITCHBOARD_CONSOLE_USERS groups (repeatable)",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="also work on other runs and timers while this command runs (default: only this run)",
    )
    p.set_defaults(handler="bot.cli.commands:decide")
    p = ap.add_parser("expire", help="withdraw a pending request now (audited): its step is rejected")
    p.add_argument("id")
    p.add_argument("--comment", "-m", help="why it is withdrawn (kept in the audit)")
    p.add_argument("--as", dest="user", default=me, help=f"who withdraws it (default: {me})")
    p.add_argument("--worker", action="store_true", help="also work on other runs and timers meanwhile")
    p.set_defaults(handler="bot.cli.commands:approvals_expire")
    p = ap.add_parser("audit", help="export the approval audit records, oldest first (json or csv)")
    p.add_argument("--run", metavar="RUN", help="only this run's records (a run id or unique prefix)")
    p.add_argument(
        "--since", metavar="DATE", help="only records at or after this ISO date or date-time (UTC by default)"
    )
    p.add_argument("--format", choices=["json", "csv"], default="json", help="output format (json)")
    p.set_defaults(handler="bot.cli.audit:export")

    cv = sub.add_parser("conversations", help="conversation analytics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = cv.add_parser("stats", help="AI resolution share, handover rate, wait and handle times, agent load")
    p.add_argument("--since", metavar="DATE", help="only conversations started at or after this date")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler="bot.cli.conversations:print_stats")

    tk = sub.add_parser("tokens", help="tokens for machines: create, list, revoke").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = tk.add_parser("create", help="make a token and print it once")
    p.add_argument("--name", required=True, help="a unique name, e.g. ci (names are never reused)")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help=f"what the token may do (repeatable, or comma-separated): {', '.join(SCOPES)}",
    )
    p.add_argument("--as", dest="user", required=True, metavar="user:NAME", help="who the token acts as")
    p.add_argument("--group", action="append", default=[], help="a group that identity is in (repeatable)")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        help="with --scope runner: a label whose jobs the runner may take (repeatable, or comma-separated)",
    )
    p.set_defaults(handler="bot.cli.tokens:create")
    p = tk.add_parser("list", help="every token: name, scopes, identity, created, last used, revoked")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler="bot.cli.tokens:list_tokens")
    p = tk.add_parser("revoke", help="revoke a token by name or id; it is refused from then on")
    p.add_argument("token", metavar="NAME|ID")
    p.set_defaults(handler="bot.cli.tokens:revoke")
    wh = sub.add_parser("webhooks", help="outbound webhooks: add, list, remove, deliveries").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = wh.add_parser("add", help="send events to a URL, signed (prints the secret once)")
    p.add_argument("url", help="where to POST, e.g. https://ci.example.com/hooks/switchboard")
    p.add_argument(
        "--events",
        required=True,
        help="comma-separated event types or patterns: run.*, step.*, approval.*, conversation.*, "
        "run.finished, ... or *",
    )
    p.add_argument("--as", dest="user", default=me, help="who adds it (recorded)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="bot.cli.webhooks:add")
    p = wh.add_parser("list", help="every subscription")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="bot.cli.webhooks:list_")
    p = wh.add_parser("remove", help="stop sending to a subscription (its undelivered events are dropped)")
    p.add_argument("id", help="a subscription id or unique prefix")
    p.set_defaults(handler="bot.cli.webhooks:remove")
    p = wh.add_parser("deliveries", help="the newest deliveries and each attempt's answer")
    p.add_argument("id", nargs="?", help="only this subscription's (id or unique prefix)")
    p.add_argument("--limit", type=int, default=20, help="how many deliveries (default 20, at most 500)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="bot.cli.webhooks:deliveries")

    p = sub.add_parser(
        "runner", help="run steps with runs_on here: connect out to a Switchboard server and take its jobs"
    )
    p.add_argument("--url", required=True, help="the server's base URL, e.g. https://switchboard.example")
    p.add_argument("--token", help="a runner token (or set SWITCHBOARD_RUNNER_TOKEN)")
    p.add_argument("--labels", required=True, help="comma-separated labels, e.g. deploy,linux")
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1, at most 64)")
    p.add_argument("--name", help="the name shown in `runners list` (default: this host's name)")
    p.add_argument("--workflows-dir", default="workflows", help="where action steps' modules are found")
    p.set_defaults(handler="bot.cli.runner:main")
    rn = sub.add_parser("runners", help="remote runners: list").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = rn.add_parser("list", help="runners heard from lately: labels, version, busy or idle, last seen")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also runners not heard from in the last hour")
    p.set_defaults(handler="bot.cli.runners:list_runners")

    dc = sub.add_parser("discord", help="Discord application commands").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = dc.add_parser("sync-commands", help="register /workflow with Discord (globally, or in one guild)")
    p.add_argument("--guild", type=int, metavar="ID", help="sync to this guild only (shows up at once)")
    p.set_defaults(handler="bot.cli.discord:sync_commands")

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = db.add_parser("upgrade", help="apply database migrations")
    p.set_defaults(handler="bot.cli.commands:db_upgrade")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``switchboard`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "runner":  # no database and no chat: it reads nothing of the server's settings
        configure_logging(os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"), "text")
        runner: Callable[[argparse.Namespace], int] = importlib.import_module("bot.cli.runner").main
        return runner(args)
    try:
        settings = load_settings()
    except SwitchboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging("WARNING" if args.command != "run" else settings.log_level, settings.log_format)
    handler = resolve(args.handler)
    try:
        return asyncio.run(_guarded(handler, settings, args))
    except BrokenPipeError:
        # The reader went away (`workflow status | head -1`): end quietly, as other tools do. Point stdout
        # at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(
            "\ninterrupted: unfinished runs are stored; `switchboard workflow resume --all` continues them",
            file=sys.stderr,
        )
        return 130


def resolve(reference: str | Handler) -> Handler:
    """The handler a ``module:function`` reference names (a handler given itself is returned as it is)."""
    if callable(reference):
        return reference
    module, _, name = reference.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


async def _guarded(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(sig: int) -> None:
        received.append(sig)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await handler(settings, args)
    except WorkflowInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc.describe(lambda name: f'-i {name}=...')}", file=sys.stderr)
        return 2
    except WorkflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SwitchboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except asyncio.CancelledError:
        if args.command != "run":
            print(
                "\nstopped: unfinished runs are stored; `switchboard workflow resume --all` continues them",
                file=sys.stderr,
            )
        return 130 if received == [signal.SIGINT] else 143


def dump(value: Any) -> None:
    """Print JSON for --json output."""
    print(json.dumps(value, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
