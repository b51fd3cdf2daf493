"""``runs_on`` in the format and the decision core (pure), and ``/runners`` and ``runners list`` on a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.identity import Identity, Place
from bot.runtime import job_secrets
from bot.runtime.runtime import Runtime
from bot.runtime.status_cards import thread_reply
from bot.storage.gauges import read_figures
from engine.core import Core
from engine.signals import StartStep, StepCompleted, StepFailed, StepLost
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepState, StepStatus
from handlers.runners import runners_command
from handlers.services import Services
from handlers.types import Command, Say
from tests.bot_process import cli

T = 1_800_000_000.0


def workflow(step: dict[str, object]) -> Workflow:
    return Workflow.model_validate({"name": "t", "steps": {"deploy": step}})


def test_runs_on_takes_labels_on_run_http_and_action_steps() -> None:
    assert workflow({"run": ["true"], "runs_on": ["linux", "deploy"]}).steps["deploy"].runs_on == [
        "deploy",
        "linux",
    ]
    assert workflow({"action": "m:f", "runs_on": "deploy"}).steps["deploy"].runs_on == ["deploy"]
    assert workflow({"http": {"url": "http://x"}, "runs_on": ["deploy"]}).steps["deploy"].runs_on
    assert workflow({"run": ["true"]}).steps["deploy"].runs_on is None
    # on_interrupt means something for any step a runner runs
    assert workflow({"action": "m:f", "runs_on": ["d"], "on_interrupt": "fail"}).steps["deploy"]


def test_runs_on_on_a_background_step_and_on_a_compensation() -> None:
    step = workflow({"run": ["tail-logs"], "runs_on": ["deploy"], "background": True, "timeout": "10m"})
    assert step.steps["deploy"].runs_on == ["deploy"] and step.steps["deploy"].background
    undo = {"run": ["./undeploy.sh"], "runs_on": "deploy"}
    spec = workflow({"run": ["./deploy.sh"], "runs_on": ["deploy"], "compensate": undo})
    compensate = spec.steps["deploy"].compensate
    assert compensate is not None and compensate.runs_on == ["deploy"]
    local = workflow({"run": ["./deploy.sh"], "runs_on": ["deploy"], "compensate": {"run": ["./undo"]}})
    assert local.steps["deploy"].compensate is not None
    assert local.steps["deploy"].compensate.runs_on is None  # not the step's: where the run is


def test_a_compensation_with_runs_on_starts_with_its_labels() -> None:
    undo = {"run": ["./undeploy.sh"], "runs_on": ["deploy", "linux"]}
    spec = Workflow.model_validate(
        {
            "name": "t",
            "on_failure": "compensate",
            "steps": {"deploy": {"run": ["./deploy.sh"], "compensate": undo}, "verify": {"run": ["false"]}},
        }
    )
    state = RunState("r1", spec, {}, status=RunStatus.RUNNING)
    c = Core(state)
    from engine.signals import Start

    c.advance(Start(), T)
    c.advance(StepCompleted("deploy", 1, {"exit_code": 0}), T + 1)
    d = c.advance(StepFailed("verify", 1, "command", "exited with code 1", {}), T + 2)
    [undo_start] = [e for e in d.effects if isinstance(e, StartStep) and e.compensation]
    assert (undo_start.key, undo_start.runs_on) == ("deploy", ("deploy", "linux"))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"run": ["true"], "runs_on": []}, "at least one runner label"),
        ({"run": ["true"], "runs_on": ["has space"]}, "runner label 'has space'"),
        ({"notify": "hi", "runs_on": ["deploy"]}, "'runs_on' applies to run, http, action steps and comp"),
        ({"llm": {"prompt": "hi"}, "runs_on": ["deploy"]}, "an llm step runs where its run is .the model"),
        (
            {"run": ["true"], "compensate": {"notify": "undone", "runs_on": ["deploy"]}},
            "a notify compensation runs where its run is",
        ),
        ({"run": ["true"], "compensate": {"run": ["undo"], "runs_on": []}}, "at least one runner label"),
        ({"run": ["true"], "runs_on": [f"l{i}" for i in range(17)]}, "the limit is 16"),
    ],
)
def test_runs_on_refuses_what_no_runner_could_take(step: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        workflow(step)


def core(policy: str) -> Core:
    spec = workflow({"run": ["deploy"], "runs_on": ["deploy"], "on_interrupt": policy})
    state = RunState("r1", spec, {}, status=RunStatus.RUNNING)
    state.steps["deploy"] = StepState("deploy", "deploy", status=StepStatus.RUNNING, attempt=1, started_at=T)
    c = Core(state)
    c.running.add("deploy")
    return c


def test_the_start_effect_carries_the_labels() -> None:
    spec = workflow({"run": ["deploy"], "runs_on": ["deploy", "linux"]})
    c = Core(RunState("r1", spec, {}))
    from engine.signals import Start

    [start] = [e for e in c.advance(Start(), T).effects if isinstance(e, StartStep)]
    assert start.runs_on == ("deploy", "linux")


def test_a_lost_lease_reruns_fails_or_asks_as_on_interrupt_says() -> None:
    c = core("rerun")
    d = c.advance(StepLost("deploy", 1, "runner build-7", T), T + 30)
    assert [(e.key, e.attempt) for e in d.effects if isinstance(e, StartStep)] == [("deploy", 2)]
    c = core("fail")
    c.advance(StepLost("deploy", 1, "runner build-7", T), T + 30)
    assert c.state.steps["deploy"].status == StepStatus.FAILED
    assert "on runner build-7" in (c.state.steps["deploy"].error or "")
    c = core("ask")
    c.advance(StepLost("deploy", 1, "runner build-7", T), T + 30)
    assert c.state.steps["deploy"].waiting_on == "interrupt"


def test_a_late_lost_report_changes_nothing() -> None:
    c = core("fail")
    c.advance(StepCompleted("deploy", 1, {"exit_code": 0}), T + 10)
    c.advance(StepLost("deploy", 1, "runner build-7", T), T + 30)
    assert c.state.steps["deploy"].status == StepStatus.SUCCEEDED
    assert c.state.status == RunStatus.SUCCEEDED


async def test_runners_in_chat_and_on_the_command_line(
    runtime: Runtime, db_url: str, workflows_dir: Path
) -> None:
    now = runtime.clock()
    await runtime.runners.register("build-7", "t1", frozenset({"deploy", "linux"}), "0.1.0", "h", 4, now)
    old = await runtime.runners.register("old-1", "t2", frozenset({"gpu"}), "0.0.9", "h", 1, now - 600)
    await runtime.runners.seen(old.id, 0, now - 600)
    who = Identity("console", "console", "alice", "alice", frozenset())
    reply = await runners_command(
        Command(who, Place("console", "ops"), "runners", ""), Services(runtime, runtime.settings)
    )
    assert isinstance(reply, Say)
    text = reply.plain_text()
    assert "build-7 [deploy, linux] v0.1.0: idle" in text
    assert "old-1 [gpu] v0.0.9: offline" in text
    assert "Jobs: 0 waiting, 0 running, 0 lost." in text
    listed = cli(db_url, workflows_dir, "runners", "list")
    assert listed.returncode == 0, listed.stderr
    assert "build-7" in listed.stdout and "deploy,linux" in listed.stdout and "idle" in listed.stdout
    assert "jobs: 0 waiting, 0 running, 0 lost" in listed.stdout


async def test_runner_jobs_waiting_and_running_are_gauges_read_from_the_table(runtime: Runtime) -> None:
    now = runtime.clock()
    async with runtime.store.engine.begin() as conn:
        for step in ("a", "b"):
            row = runtime.jobs.row(
                "r1", step, 1, False, "run", ("deploy",), {"argv": ["true"]}, None, now - 30
            )
            await conn.execute(runtime.jobs.insert, row)
    assert await runtime.jobs.claim("x", "build-7", frozenset({"deploy"}), 1, now, 15.0) is not None
    assert await runtime.jobs.claim("x", "build-7", frozenset({"deploy"}), 1, now, 15.0) is None  # full
    assert await runtime.jobs.claim("y", "other", frozenset({"build"}), 4, now, 15.0) is None  # no label
    figures = await read_figures(runtime.store.engine, now)
    assert (figures.runner_jobs_waiting, figures.runner_jobs_running) == (1, 1)
    assert figures.runner_oldest_wait == 30.0


def test_secrets_leave_a_job_as_markers_and_come_back_only_with_the_jobs_nonce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-123456")
    params = {"argv": ["deploy"], "env": {"AUTH": "Bearer tok-123456", "PLAIN": "x"}}
    stored = job_secrets.hide(params, {"DEPLOY_TOKEN": "tok-123456", "EMPTY": ""}, "n1")
    assert "tok-123456" not in str(stored)
    assert stored["env"]["AUTH"] == "Bearer [sb-secret:n1:DEPLOY_TOKEN]"
    assert job_secrets.reveal(stored, "n1") == params
    # a marker with another nonce (written by an input, say) is left as text
    forged = {"env": {"X": "[sb-secret:guess:DEPLOY_TOKEN]"}}
    assert job_secrets.reveal(forged, "n1") == forged


def test_the_thread_says_a_step_waits_for_a_runner_and_shows_its_output() -> None:
    waiting = {
        "type": "step_waiting",
        "step_key": "deploy",
        "data": {"text": "waiting for a runner labelled deploy"},
    }
    card = thread_reply(waiting)
    assert card is not None and card.text == "⏳ *deploy* is waiting for a runner labelled deploy"
    shown = {"type": "step_progress", "step_key": "deploy", "data": {"text": "compiling\nlinking"}}
    card = thread_reply(shown)
    assert card is not None and card.text == "… *deploy* on its runner:\n```compiling\nlinking```"


async def test_a_runner_takes_only_jobs_whose_labels_it_has_all_of_oldest_first(runtime: Runtime) -> None:
    now = runtime.clock()
    async with runtime.store.engine.begin() as conn:
        for step, labels, at in (
            ("a", ("deploy", "linux"), 1.0),
            ("b", ("deploy",), 2.0),
            ("c", ("gpu",), 0.5),
        ):
            row = runtime.jobs.row("r1", step, 1, False, "run", labels, {}, None, now - 60 + at)
            await conn.execute(runtime.jobs.insert, row)
    deploy_only = frozenset({"deploy"})
    taken = await runtime.jobs.claim("x", "d-1", deploy_only, 4, now, 15.0)
    assert taken is not None and taken.step == "b"  # "a" wants linux too; "c" is older but gpu's
    assert await runtime.jobs.claim("x", "d-1", deploy_only, 4, now, 15.0) is None
    both = await runtime.jobs.claim("y", "d-2", frozenset({"deploy", "linux", "arm"}), 4, now, 15.0)
    assert both is not None and (both.step, both.runner_name, both.status) == ("a", "d-2", "leased")
    assert both.lease_until == now + 15.0 and both.taken_at == now
