"""The ``switchboard`` command line, driven as a user drives it: a real process per command.

A process start costs a second or two, so independent commands run side by side: the commands that
store nothing all start at once in one test. Commands that store runs are tested on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from engine.loader import load_workflow
from engine.source_map import parse_yaml, plain
from tests.helpers import eventually, finished

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "workflows"
RUN_ID = re.compile(r"\brun ([0-9a-f]{12})\b")
TOOK = r"\d+(\.\d)?m?s"  # a duration as the CLI prints it: 850ms, 4.2s


@dataclass(frozen=True)
class Result:
    """A finished command: its exit code and its output (stdout and stderr interleaved)."""

    code: int
    out: str


# Settings a developer's shell may hold; a command under test must not pick them up (nor reach Slack).
FOREIGN = ("SWITCHBOARD_", "OPENAI_", "SLACK_", "DISCORD_", "REDIS_URL", "PORT")


def environment(db_url: str, workflows: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without its Switchboard settings, pointed at this test's files."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return {
        **inherited,
        "DATABASE_URL": db_url,
        "SWITCHBOARD_WORKFLOWS_DIR": str(workflows),
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_KILL_GRACE": "0.5",
        **extra,
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``python -m bot.cli.main ARGS``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish_now(proc: subprocess.Popen[str], timeout: float = 60.0) -> Result:
    """Wait for a command to end (killing it if it outlives ``timeout``)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{proc.args!r} still running after {timeout}s; output so far:\n{out}") from None
    return Result(proc.returncode, out)


async def finish(*procs: subprocess.Popen[str], timeout: float = 60.0) -> list[Result]:
    """Wait for commands started side by side, without blocking the test's event loop."""
    return list(await asyncio.gather(*(asyncio.to_thread(finish_now, p, timeout) for p in procs)))


async def cli(env: dict[str, str], *args: str, timeout: float = 60.0) -> Result:
    """Run one command to its end."""
    [result] = await finish(start(env, *args), timeout=timeout)
    return result


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll until ``predicate()`` is true; a database without tables yet counts as not yet."""
    await eventually(predicate, timeout, predicate.__name__, ignore=(sa.exc.DBAPIError,))


def run_id(output: str) -> str:
    """The run id from a ``workflow run`` header (▶ name  run 0123456789ab)."""
    found = RUN_ID.search(output)
    assert found, output
    return found.group(1)


WORKFLOWS = {
    "greet": """\
name: greet
description: Three steps, each undone by a compensation that writes to a log
inputs:
  who: {type: string, required: true, description: Who to greet}
steps:
  a:
    run: ["python3", "-c", "import sys; print('a', sys.argv[1])", "${{ inputs.who }}"]
    compensate: {run: ["sh", "-c", "echo undo-a >> @LOG@"]}
  b:
    needs: [a]
    run: ["python3", "-c", "print('b')"]
    compensate: {run: ["sh", "-c", "echo undo-b >> @LOG@"]}
  c:
    needs: [b]
    run: ["python3", "-c", "print('c')"]
    compensate: {run: ["sh", "-c", "echo undo-c >> @LOG@"]}
outputs:
  greeting: "${{ steps.a.outputs.stdout }}"
""",
    "failing": """\
name: failing
steps:
  boom: {run: ["python3", "-c", "import sys; print('disk full on /var', file=sys.stderr); sys.exit(3)"]}
  never: {needs: [boom], run: ["python3", "-c", "pass"]}
""",
    "undone": """\
name: undone
on_failure: compensate
steps:
  book: {run: ["python3", "-c", "pass"], compensate: {run: ["sh", "-c", "echo unbook >> @LOG@"]}}
  pay: {needs: [book], run: ["python3", "-c", "import sys; sys.exit(1)"]}
""",
    "sleepy": """\
name: sleepy
steps:
  nap: {run: ["sleep", "30"]}
  after: {needs: [nap], run: ["python3", "-c", "pass"]}
""",
    "gate": """\
name: gate
steps:
  sign_off:
    approval: {title: Ship it?, approvers: ["user:alice", "group:ops"]}
""",
}


def write_workflows(folder: Path, log: Path) -> None:
    """The workflows these tests run: a success with compensations, a failure, a long step and an approval."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in WORKFLOWS.items():
        (folder / f"{name}.yaml").write_text(text.replace("@LOG@", str(log)))


BROKEN = """\
name: broken
steps:
  build:
    run: make all
  test:
    needs: [biuld]
    run: [make, test]
"""


# -- commands that store nothing: started all at once, each checked as a subtest -----------------
# One test rather than a module fixture: under pytest-xdist each worker would start the fixture's
# eight processes again.


def test_commands_that_store_nothing(tmp_path: Path, subtests: pytest.Subtests) -> None:
    folder, broken, schema_file = tmp_path / "workflows", tmp_path / "broken.yaml", tmp_path / "schema.json"
    write_workflows(folder, tmp_path / "log")
    broken.write_text(BROKEN)
    db = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    env, examples = environment(db, folder), environment(db, EXAMPLES)
    commands = {
        "validate_examples": (examples, ["workflow", "validate"]),
        "validate_broken": (env, ["workflow", "validate", str(broken), str(folder / "greet.yaml")]),
        "unknown_workflow": (env, ["workflow", "run", "greeet"]),
        "missing_input": (env, ["workflow", "run", "greet"]),
        "no_equals": (env, ["workflow", "run", "greet", "--input", "who"]),
        "misspelt_setting": ({**env, "SWITCHBOARD_WORKFLOW_DIR": str(folder)}, ["workflow", "list"]),
        "schema": (env, ["workflow", "schema", "-o", str(schema_file)]),
        "list": (examples, ["workflow", "list"]),
    }
    procs = {name: start(e, *args) for name, (e, args) in commands.items()}
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that went away at once, as `| head -1` does after its line
    closed_pipe = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "workflow", "list"],
        env=examples,
        text=True,
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    done = {name: finish_now(proc) for name, proc in procs.items()}
    _, closed_pipe_errors = closed_pipe.communicate(timeout=60)

    with subtests.test("output into a closed pipe ends quietly"):
        assert closed_pipe.returncode == 141, closed_pipe_errors
        assert closed_pipe_errors == ""

    with subtests.test("workflow validate: each example is valid"):
        result = done["validate_examples"]
        assert result.code == 0, result.out
        for name in ("deploy", "incident", "budget", "pipeline"):
            assert f"{EXAMPLES / name}.yaml: valid" in result.out.splitlines(), result.out

    with subtests.test("workflow validate: path:line:col: message for a broken file"):
        result = done["validate_broken"]
        assert result.code == 2, result.out
        lines = result.out.splitlines()
        assert any(
            ln.startswith(f"{broken}:4:10: step 'build': 'run' takes a list of arguments") for ln in lines
        )
        assert (
            f"{broken}:6:13: step 'test' needs 'biuld', which is not a step; did you mean 'build'?" in lines
        )
        assert f"{folder / 'greet.yaml'}: valid" in lines  # the other file is still checked

    with subtests.test("workflow run: an unknown name suggests the closest"):
        result = done["unknown_workflow"]
        assert result.code != 0
        assert "no workflow named 'greeet'" in result.out and "did you mean 'greet'?" in result.out

    with subtests.test("workflow run: a missing required input is named"):
        result = done["missing_input"]
        assert result.code == 2, result.out
        assert "who: required (Who to greet); pass it as -i who=..." in result.out

    with subtests.test("workflow run: --input without '=' is bad usage"):
        result = done["no_equals"]
        assert result.code == 2, result.out
        assert "'who' is not name=value" in result.out

    with subtests.test("a misspelt setting names the valid one"):
        result = done["misspelt_setting"]
        assert result.code != 0
        assert (
            "unknown setting SWITCHBOARD_WORKFLOW_DIR; did you mean SWITCHBOARD_WORKFLOWS_DIR?" in result.out
        )

    with subtests.test("workflow schema -o: JSON that accepts every example"):
        result = done["schema"]
        assert result.code == 0 and f"wrote {schema_file}" in result.out, result.out
        validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))  # what editors apply
        for path in sorted(EXAMPLES.glob("*.yaml")):
            assert list(validator.iter_errors(plain(parse_yaml(path.read_text())[0]))) == [], path

    with subtests.test("workflow list: names, descriptions and inputs"):
        result = done["list"]
        assert result.code == 0, result.out
        for name in ("deploy", "incident", "budget", "pipeline"):
            assert re.search(rf"^{name} +\S", result.out, re.MULTILINE), result.out
        assert "inputs: service=<string> severity=<enum> [summary]" in result.out


# -- commands that store runs: SQLite and PostgreSQL ------------------------------------------------


async def migrated(db_url: str) -> RunStore:
    """A store on the test database, its tables created here so concurrent commands find them ready."""
    engine = create_engine(db_url)
    await migrate(engine)
    return RunStore(engine)


async def test_run_status_and_rollback(db_url: str, workflows_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_workflows(workflows_dir, log)
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    try:
        good, bad = await finish(
            start(env, "workflow", "run", "greet", "--input", "who=ana"),
            start(env, "workflow", "run", "failing"),
        )
        assert good.code == 0, good.out
        for step in "abc":
            assert re.search(rf"✓ {step} +{TOOK}$", good.out, re.MULTILINE), good.out
        assert "✓ run succeeded" in good.out and '"greeting": "a ana"' in good.out
        assert bad.code == 1, bad.out
        assert re.search(rf"✗ boom +exited with code 3: disk full on /var \({TOOK}\)", bad.out), bad.out
        assert "stderr: disk full on /var" in bad.out
        assert "⏭ never" in bad.out and "✗ run failed: step 'boom' failed" in bad.out

        undone, detached = await finish(
            start(env, "workflow", "run", "undone"),
            start(env, "workflow", "run", "greet", "-i", "who=bo", "--detach"),
        )
        assert undone.code == 1, undone.out  # failed and undone is not success
        assert "↺ run compensated" in undone.out and "unbook" in log.read_text()
        assert detached.code == 0, detached.out
        assert "queued run" in detached.out and "for the bot process" in detached.out
        queued = await store.run_row(run_id(detached.out))
        assert queued is not None and queued.status == "pending" and queued.lease_owner is None
        assert await store.step_rows(queued.id) == []  # nothing started, so nothing was interrupted
        log.write_text("")

        good_id, bad_id = run_id(good.out), run_id(bad.out)
        rollback, status, as_json = await finish(
            start(env, "workflow", "rollback", good_id, "--to", "a"),
            start(env, "workflow", "status", bad_id),
            start(env, "workflow", "status", bad_id, "--json"),
        )
        assert rollback.code == 0, rollback.out
        assert "↺ run compensated" in rollback.out
        assert log.read_text().split() == ["undo-c", "undo-b"]  # newest first, nothing up to 'a'
        row = await store.run_row(good_id)
        assert row is not None and row.status == "compensated"

        assert status.code == 0, status.out
        assert f"run {bad_id}  failing  failed" in status.out
        boom = re.search(rf"^  boom +failed +{TOOK}  exited with code 3: disk full", status.out, re.MULTILINE)
        assert boom, status.out
        assert re.search(r"^  never +skipped", status.out, re.MULTILINE), status.out
        assert "error: step 'boom' failed" in status.out

        assert as_json.code == 0, as_json.out
        shown = json.loads(as_json.out)
        assert shown["run"]["id"] == bad_id and shown["run"]["status"] == "failed"
        assert {s["key"]: s["status"] for s in shown["steps"]} == {"boom": "failed", "never": "skipped"}
        assert shown["approvals"] == []
    finally:
        await store.engine.dispose()


async def test_cancel_from_another_process_stops_the_run(
    db_url: str, workflows_dir: Path, tmp_path: Path
) -> None:
    write_workflows(workflows_dir, tmp_path / "log")
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    runner = start(env, "workflow", "run", "sleepy")
    canceller: subprocess.Popen[str] | None = None
    try:

        async def napping() -> bool:
            runs = await store.list_runs()
            return bool(runs) and any(
                s.key == "nap" and s.status == "running" for s in await store.step_rows(runs[0].id)
            )

        await wait_for(napping)
        [row] = await store.list_runs()
        canceller = start(env, "workflow", "cancel", row.id, "--as", "ops-oncall")
        ran, cancelled = await finish(runner, canceller, timeout=60)
        assert ran.code == 1, ran.out
        assert (
            "run cancelled" in ran.out
        )  # stopped by the cancel, not by its 30 s sleep ending (bench/lifecycle.py times it)
        assert cancelled.code == 0, cancelled.out
        assert f"cancelling run {row.id}" in cancelled.out
        final = await store.run_row(row.id)
        assert final is not None and final.status == "cancelled"
        steps = {s.key: s.status for s in await store.step_rows(row.id)}
        assert steps == {"nap": "cancelled", "after": "skipped"}
    finally:
        for proc in (runner, canceller):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        await store.engine.dispose()


async def test_approval_refuses_the_starter_and_non_approvers(
    db_url: str, workflows_dir: Path, tmp_path: Path, make_runtime: Callable[..., Awaitable[Runtime]]
) -> None:
    write_workflows(workflows_dir, tmp_path / "log")
    runtime = await make_runtime()
    started = await runtime.submit(load_workflow(workflows_dir / "gate.yaml"), {}, started_by="console:bob")

    async def requested() -> bool:
        return any(a.run_id == started.run_id for a in await runtime.approvals.pending())

    await wait_for(requested)
    [request] = await runtime.approvals.pending()
    env = environment(db_url, workflows_dir)
    own, outsider = await finish(
        start(env, "approvals", "decide", request.id, "approve", "--as", "bob"),
        start(env, "approvals", "decide", request.id, "approve", "--as", "mallory", "--group", "sales"),
    )
    assert own.code != 0 and "You started this run, so you cannot approve it" in own.out, own.out
    assert outsider.code != 0, outsider.out
    assert "You are not an approver for this request (approvers: user:alice, group:ops)" in outsider.out
    [still] = await runtime.approvals.pending()
    assert still.id == request.id
    row = await runtime.store.run_row(started.run_id)
    assert row is not None and row.status == "waiting"


async def test_db_upgrade_twice_then_run_the_bot_until_sigterm(db_url: str, workflows_dir: Path) -> None:
    env = environment(db_url, workflows_dir, SWITCHBOARD_PORT="0")  # any free port: tests run in parallel
    first = await cli(env, "db", "upgrade")
    assert first.code == 0 and "created the database schema (revision" in first.out, first.out
    bot = start(env, "run")
    again = start(env, "db", "upgrade")
    try:
        assert bot.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(_line_with, bot, "Switchboard is running"), 30)
        assert "Press Ctrl-C to stop" in line
        bot.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(bot.wait, 60)  # how long it takes: bench/lifecycle.py
        assert code == 0, bot.stdout.read()  # a graceful stop: exit code 0, not killed by the signal
        [second] = await finish(again)
        assert second.code == 0 and "the database is up to date (revision" in second.out, second.out
        store = RunStore(create_engine(env["DATABASE_URL"]))
        try:
            assert await store.list_runs() == []  # the tables are there, once
        finally:
            await store.engine.dispose()
    finally:
        for proc in (bot, again):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _line_with(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        if text in line:
            return line
        seen.append(line)
    raise AssertionError(
        f"the process ended (code {proc.wait()}) without printing {text!r}:\n{''.join(seen)}"
    )


async def test_a_detached_run_is_started_by_the_bot_process(
    db_url: str, workflows_dir: Path, tmp_path: Path, make_runtime: Callable[..., Awaitable[Runtime]]
) -> None:
    write_workflows(workflows_dir, tmp_path / "log")
    store = await migrated(db_url)
    try:
        detached = await cli(environment(db_url, workflows_dir), "workflow", "run", "undone", "--detach")
        assert detached.code == 0, detached.out
        queued = run_id(detached.out)
        bot = await make_runtime()  # the bot process starts it: the CLI process never ran a step
        row = await finished(bot, queued)
        assert row.status == "compensated"
        book = {s.key: s for s in await store.step_rows(queued)}["book"]
        assert book.attempt == 1  # not "attempt 2" after an interruption
    finally:
        await store.engine.dispose()
