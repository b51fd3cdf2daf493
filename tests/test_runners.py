"""Remote runners end to end: real `switchboard runner` processes against a real `switchboard run` server.

Steps append lines to a log file, so the assertions count which runner ran what, how often and with
which idempotency key. On SQLite and PostgreSQL alike: the runners never touch the database, so the
server is the one process using it (SQLite serves one), besides this test reading its rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.storage.database import create_engine
from bot.storage.tables import runner_jobs
from bot.storage.tokens import TokenStore
from bot.tokens import acting_as, parse_scopes
from tests.bot_process import ROOT, Bot
from tests.helpers import eventually

pytestmark = pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
LEASE = "4"  # seconds: a killed runner's jobs lapse this long after its last heartbeat (2 cores, loaded)


class Runner:
    """`switchboard runner` in a child process; ``mark`` is in its environment, so steps can say who ran them."""

    def __init__(self, url: str, token: str, labels: str, mark: str, concurrency: int = 1) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in close())
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(PYTHONPATH=str(ROOT), MARK=mark)
        args = ["--url", url, "--token", token, "--labels", labels, "--name", mark]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "runner", *args, "--concurrency", str(concurrency)],
            env=env,
            text=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class Server:
    """The server, the tokens the tests use and a way to start runners against it."""

    def __init__(self, db_url: str, workflows: Path) -> None:
        self.db_url, self.workflows = db_url, workflows
        self.bot = Bot(db_url, workflows, SWITCHBOARD_RUNNER_LEASE=LEASE)
        self.runners: list[Runner] = []
        self.engine = create_engine(db_url)
        self.api_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot.port}"

    async def start(self) -> None:
        await self.bot.start()
        if not self.api_token:
            self.api_token = await self.token("api", "runs:read,runs:write")

    async def token(self, name: str, scopes: str, labels: frozenset[str] = frozenset()) -> str:
        _, text = await TokenStore(self.engine).create(
            name, parse_scopes([scopes]), acting_as("user:ci"), "tests", 1.0, labels
        )
        return text

    async def runner(self, labels: str, mark: str, concurrency: int = 1, token: str | None = None) -> Runner:
        if token is None:
            token = await self.token(f"runner-{mark}", "runner", frozenset(labels.split(",")))
        runner = Runner(self.url, token, labels, mark, concurrency)
        self.runners.append(runner)
        return runner

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}/api/v1{path}", json=body, headers=headers) as reply,
        ):
            data = await reply.json(content_type=None)
            assert reply.status < 300, data
            return data

    async def start_run(self, workflow: str, inputs: dict[str, Any] | None = None) -> str:
        answer = await self.api("POST", "/runs", {"workflow": workflow, "inputs": inputs or {}})
        return str(answer["id"])

    async def finished(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            run = await self.api("GET", f"/runs/{run_id}")
            return run if run["status"] in ("succeeded", "failed", "cancelled", "compensated") else None

        return await eventually(done, timeout, f"run {run_id} to finish", interval=0.1)

    async def close(self) -> None:
        for runner in self.runners:
            runner.close()
        self.bot.close()
        await self.engine.dispose()


@pytest.fixture
async def server(db_url: str, workflows_dir: Path) -> AsyncIterator[Server]:
    s = Server(db_url, workflows_dir)
    try:
        await s.start()
        yield s
    finally:
        await s.close()


def workflow(folder: Path, name: str, steps: str) -> None:
    (folder / f"{name}.yaml").write_text(f"name: {name}\nsteps:\n{steps}")


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def shell(script: str) -> str:
    """A run: step that runs ``script`` with sh (the script is the test's own, never an input)."""
    return json.dumps(["sh", "-c", script])


async def test_jobs_go_to_runners_with_their_labels_within_each_runners_concurrency(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    item = f'echo "start $MARK" >> {log}; sleep 1; echo "end $MARK" >> {log}'
    workflow(
        server.workflows,
        "routed",
        f"""  deploy:
    for_each: [1, 2, 3, 4]
    runs_on: [deploy]
    run: {shell(item)}
  build:
    runs_on: [build]
    run: {shell(f'echo "build $MARK" >> {log}')}
""",
    )
    await server.runner("deploy,linux", "D", concurrency=2)
    await server.runner("build", "B")
    run = await server.finished(await server.start_run("routed"))
    assert run["status"] == "succeeded", run
    got = lines(log)
    assert sorted(got) == ["build B"] + ["end D"] * 4 + ["start D"] * 4
    running, most = 0, 0
    for line in got:
        if line.startswith(("start", "end")):
            running += 1 if line.startswith("start") else -1
            most = max(most, running)
    assert most == 2  # the deploy runner ran two at once, and never three


async def test_a_runner_killed_mid_step_loses_its_lease_and_the_step_reruns_with_the_same_key(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    first = f'echo "first $MARK" >> {log}'
    slow = (
        f'echo "deploy $MARK $SWITCHBOARD_ATTEMPT $SWITCHBOARD_IDEMPOTENCY_KEY" >> {log}; '
        f'if [ "$MARK" = A ]; then sleep 60; fi; echo "done $MARK" >> {log}'
    )
    workflow(
        server.workflows,
        "killed",
        f"""  first:
    runs_on: [deploy]
    run: {shell(first)}
  deploy:
    needs: first
    runs_on: [deploy]
    run: {shell(slow)}
""",
    )
    a = await server.runner("deploy", "A")
    run_id = await server.start_run("killed")
    await eventually(lambda: any(ln.startswith("deploy A") for ln in lines(log)), 60, "the step on A")
    b = await server.runner("deploy", "B")
    await asyncio.sleep(0)  # B is polling by now or soon: either way it takes the job once A's lease lapses
    a.kill()
    run = await server.finished(run_id)
    assert run["status"] == "succeeded", (run, b.output())
    got = lines(log)
    assert got[0] == "first A" and got.count("first A") == 1  # finished on the runner: never run again
    [on_a] = [ln.split() for ln in got if ln.startswith("deploy A")]
    [on_b] = [ln.split() for ln in got if ln.startswith("deploy B")]
    assert (on_a[2], on_b[2]) == ("1", "2")
    assert on_a[3] == on_b[3] == f"{run_id}:deploy"
    assert "done A" not in got  # the killed runner's program died with it
    kinds = [e["type"] for e in run["events"] if e["step"] == "deploy"]
    assert "step_interrupted" in kinds
    [lost] = [e for e in run["events"] if e["type"] == "step_interrupted"]
    assert lost["data"]["host"] == "runner A" and lost["data"]["action"] == "rerun"


async def test_on_interrupt_fail_fails_the_step_when_its_runner_dies(server: Server, tmp_path: Path) -> None:
    log = tmp_path / "log"
    workflow(
        server.workflows,
        "fragile",
        f"""  deploy:
    runs_on: [deploy]
    on_interrupt: fail
    run: {shell(f"echo started >> {log}; sleep 60")}
""",
    )
    a = await server.runner("deploy", "A")
    run_id = await server.start_run("fragile")
    await eventually(lambda: lines(log) == ["started"], 60, "the step to start")
    a.kill()
    run = await server.finished(run_id)
    assert run["status"] == "failed"
    [step] = run["steps"]
    assert "interrupted by a crash on runner A" in step["error"]
    assert "on_interrupt: fail" in step["error"]


async def test_a_step_waits_for_a_runner_then_runs_and_survives_a_server_restart(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    gate = tmp_path / "gate"
    script = (
        f'echo "start $MARK" >> {log}; while [ ! -e {gate} ]; do sleep 0.1; done; echo "end $MARK" >> {log}'
    )
    workflow(server.workflows, "patient", f"  deploy:\n    runs_on: [deploy]\n    run: {shell(script)}\n")
    run_id = await server.start_run("patient")

    async def waiting() -> bool:
        run = await server.api("GET", f"/runs/{run_id}")
        return any(e["type"] == "step_waiting" for e in run["events"])

    await eventually(waiting, 30, "the step to say it waits for a runner")
    run = await server.api("GET", f"/runs/{run_id}")
    [note] = [e for e in run["events"] if e["type"] == "step_waiting"]
    assert note["data"]["text"] == "waiting for a runner labelled deploy"
    runner = await server.runner("deploy", "A")
    await eventually(lambda: lines(log) == ["start A"], 60, "the runner to take the job")
    server.bot.kill()  # the server dies while the runner holds the job
    port = server.bot.port
    server.bot.close()
    server.bot = Bot(server.db_url, server.workflows, SWITCHBOARD_RUNNER_LEASE=LEASE)
    server.bot.port, server.bot.env["PORT"] = port, str(port)  # where the runner knows it
    await server.start()
    await eventually(lambda: "unreachable" in runner.output(), 30, "the runner to notice")
    gate.write_text("go")
    try:
        run = await server.finished(run_id)
    except AssertionError:
        raise AssertionError(f"{runner.output()}\n---\n{server.bot.output()}") from None
    assert run["status"] == "succeeded", (run, runner.output())
    assert lines(log) == ["start A", "end A"]  # not run again after the restart
    assert "reachable again" in runner.output()


async def test_output_shows_as_progress_and_cancel_stops_the_program_on_the_runner(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    script = (
        f'trap "echo term >> {log}; exit 143" TERM; echo started >> {log}; '
        "echo compiling; echo linking; sleep 60 & wait"
    )
    workflow(server.workflows, "stoppable", f"  deploy:\n    runs_on: [deploy]\n    run: {shell(script)}\n")
    runner = await server.runner("deploy", "A")
    run_id = await server.start_run("stoppable")
    await eventually(lambda: lines(log) == ["started"], 60, "the step to start")

    async def progress() -> list[dict[str, Any]]:
        run = await server.api("GET", f"/runs/{run_id}")
        return [e for e in run["events"] if e["type"] == "step_progress"]

    [shown] = await eventually(progress, 60, "the streamed lines to show as progress")
    assert shown["data"]["text"] == "compiling\nlinking"
    await server.api("POST", f"/runs/{run_id}/cancel", {})
    run = await server.finished(run_id)
    assert run["status"] == "cancelled"
    await eventually(lambda: lines(log) == ["started", "term"], 30, "SIGTERM to reach the program")
    assert "the run cancelled it" in runner.output()


async def test_large_output_is_capped_as_for_a_local_step(server: Server) -> None:
    workflow(
        server.workflows,
        "chatty",
        "  deploy:\n    runs_on: [deploy]\n    run: [seq, '1', '200000']\n    outputs:\n"
        "      last: ${{ result.stdout }}\n",
    )
    await server.runner("deploy", "A")
    run = await server.finished(await server.start_run("chatty"))
    assert run["status"] == "succeeded", run
    async with server.engine.connect() as conn:
        params, output = (await conn.execute(sa.select(runner_jobs.c.params, runner_jobs.c.output))).one()
    assert params is None  # erased once the job ended: the rendered params may hold secrets
    assert output.endswith("199999\n200000\n") and len(output) <= 64 * 1024
    [step] = run["steps"]
    stdout = step["outputs"]["last"]
    assert stdout.endswith("200000") and len(stdout.encode()) <= 64 * 1024


async def test_a_token_without_the_runner_scope_or_the_labels_is_refused(server: Server) -> None:
    plain = await server.token("reader", "runs:read")
    r = await server.runner("deploy", "X", token=plain)
    assert r.proc.wait(timeout=60) == 2
    assert "lacks the runner scope" in r.output()
    build_only = await server.token("build-runner", "runner", frozenset({"build"}))
    r = await server.runner("deploy", "Y", token=build_only)
    assert r.proc.wait(timeout=60) == 2
    assert "may take jobs labelled build only, not deploy" in r.output()


async def test_a_runner_gets_the_secrets_its_step_names_and_no_others(
    db_url: str, workflows_dir: Path
) -> None:
    s = Server(db_url, workflows_dir)
    s.bot = Bot(
        db_url,
        workflows_dir,
        SWITCHBOARD_RUNNER_LEASE=LEASE,
        DEPLOY_TOKEN="deploy-secret-7f3a9c",
        OTHER_TOKEN="other-secret-52d1e8",
    )
    seen, env_dump = workflows_dir / "seen", workflows_dir / "env"
    (workflows_dir / "secretive.yaml").write_text(
        "name: secretive\nsecrets: [DEPLOY_TOKEN, OTHER_TOKEN]\nsteps:\n  deploy:\n    runs_on: [deploy]\n"
        f"    run: {shell(f'printf %s $TOKEN > {seen}; env > {env_dump}')}\n"
        "    env: {TOKEN: '${{ secrets.DEPLOY_TOKEN }}'}\n"
    )
    try:
        await s.start()
        await s.runner("deploy", "A")
        run = await s.finished(await s.start_run("secretive"))
        assert run["status"] == "succeeded", run
        assert seen.read_text() == "deploy-secret-7f3a9c"  # the value itself, not a mask
        assert "other-secret-52d1e8" not in env_dump.read_text()
        async with s.engine.connect() as conn:
            [params] = (await conn.execute(sa.select(runner_jobs.c.params))).scalars().all()
        assert params is None
    finally:
        await s.close()


async def test_a_step_times_out_on_the_runner_or_waiting_for_one(server: Server, tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f'trap "echo term >> {log}; exit 143" TERM; echo started >> {log}; sleep 60 & wait'
    workflow(
        server.workflows,
        "slow",
        f"  deploy:\n    runs_on: [deploy]\n    timeout: 3s\n    run: {shell(script)}\n",
    )
    workflow(
        server.workflows, "lonely", "  deploy:\n    runs_on: [gpu]\n    timeout: 2s\n    run: ['true']\n"
    )
    lonely = await server.start_run("lonely")
    runner = await server.runner("deploy", "A")
    # Registered before the 3 s start counting: a loaded machine can take that long to start a runner.
    await eventually(lambda: "registered as" in runner.output(), 60, "the runner to register")
    run = await server.finished(await server.start_run("slow"))
    assert run["status"] == "failed"
    assert run["steps"][0]["error"].startswith("timed out after 3")  # as a local step says it
    await eventually(lambda: lines(log) == ["started", "term"], 30, "SIGTERM to reach the program")
    run = await server.finished(lonely)
    assert run["status"] == "failed" and run["steps"][0]["error"].startswith("timed out after 2")
    async with server.engine.connect() as conn:
        statuses = (await conn.execute(sa.select(runner_jobs.c.run_id, runner_jobs.c.status))).all()
    assert (lonely, "cancelled") in statuses  # nobody can take it any more


async def test_a_revoked_token_stops_its_runner(server: Server) -> None:
    text = await server.token("soon-revoked", "runner", frozenset({"deploy"}))
    r = await server.runner("deploy", "R", token=text)
    await eventually(lambda: "registered as" in r.output(), 60, "the runner to register")
    await TokenStore(server.engine).revoke("soon-revoked", 2.0)
    assert r.proc.wait(timeout=60) == 2
    assert "the server refused this runner (401)" in r.output()


async def test_a_runner_stopped_with_sigterm_stops_its_program_and_hands_the_job_back(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    script = f'trap "echo term >> {log}; exit 143" TERM; echo started >> {log}; sleep 60 & wait'
    workflow(
        server.workflows,
        "handed_back",
        f"  deploy:\n    runs_on: [deploy]\n    on_interrupt: fail\n    run: {shell(script)}\n",
    )
    runner = await server.runner("deploy", "A")
    run_id = await server.start_run("handed_back")
    await eventually(lambda: lines(log) == ["started"], 60, "the step to start")
    runner.proc.terminate()
    assert runner.proc.wait(timeout=30) == 0
    assert lines(log) == ["started", "term"]  # SIGTERM reached the program before the runner ended
    assert "handed back: this runner is stopping" in runner.output()  # not left to lapse
    run = await server.finished(run_id)
    assert run["status"] == "failed"
    assert "on runner A" in run["steps"][0]["error"] and "on_interrupt: fail" in run["steps"][0]["error"]
    async with server.engine.connect() as conn:
        [status] = (await conn.execute(sa.select(runner_jobs.c.status))).scalars().all()
    assert status == "lost"


async def test_a_background_step_runs_on_a_runner_while_the_steps_after_it_go_on(
    server: Server, tmp_path: Path
) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    tail = f'echo "tail $MARK" >> {log}; while [ ! -e {gate} ]; do sleep 0.1; done; echo "tail done" >> {log}'
    workflow(
        server.workflows,
        "watched",
        f"""  tail:
    runs_on: [deploy]
    background: true
    timeout: 60s
    run: {shell(tail)}
  deploy:
    needs: tail
    run: {shell(f"echo deploy >> {log}; touch {gate}")}
""",
    )
    await server.runner("deploy", "A")
    run = await server.finished(await server.start_run("watched"))
    assert run["status"] == "succeeded", run
    # deploy started once the background step had (not when it ended: the step waited for deploy's gate)
    got = lines(log)
    assert sorted(got) == ["deploy", "tail A", "tail done"] and got[-1] == "tail done"
    async with server.engine.connect() as conn:
        [(runner, status)] = (
            await conn.execute(sa.select(runner_jobs.c.runner_name, runner_jobs.c.status))
        ).all()
    assert (runner, status) == ("A", "done")


async def test_a_compensation_with_runs_on_runs_on_a_runner(server: Server, tmp_path: Path) -> None:
    log = tmp_path / "log"
    undo = f'echo "undo $MARK $SWITCHBOARD_IDEMPOTENCY_KEY" >> {log}'
    (server.workflows / "undone.yaml").write_text(
        f"""name: undone
on_failure: compensate
steps:
  deploy:
    runs_on: [deploy]
    run: {shell(f'echo "deploy $MARK" >> {log}')}
    compensate: {{runs_on: [deploy], run: {shell(undo)}}}
  verify:
    needs: deploy
    run: ["false"]
"""
    )
    await server.runner("deploy", "A")
    run_id = await server.start_run("undone")
    run = await server.finished(run_id)
    assert run["status"] == "compensated", run
    # $MARK is the runner's: the server's environment has none, so a local undo would write "undo  ..."
    assert lines(log) == ["deploy A", f"undo A {run_id}:deploy:compensate"]
