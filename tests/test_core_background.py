"""Pure tests of background steps in the decision core, and the load errors that keep them well formed."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core import Core
from engine.loader import WorkflowInvalid, load_text
from engine.signals import (
    Cancel,
    CancelStep,
    Interruption,
    Resume,
    SetTimer,
    Start,
    StartStep,
    StepCompleted,
    StepFailed,
    TimerFired,
)
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepState, StepStatus

WARM = {"run": ["warm"], "background": True, "timeout": "5m"}


def core(steps: dict[str, Any], **extra: Any) -> Core:
    spec = Workflow.model_validate({"name": "t", "steps": steps, **extra})
    return Core(RunState("r1", spec, {}))


def started(decision: Any) -> list[str]:
    return [e.key for e in decision.effects if isinstance(e, StartStep)]


def events(decision: Any, type_: str) -> list[Any]:
    return [e for e in decision.events if e.type == type_]


def test_a_step_that_needs_a_background_step_starts_as_soon_as_it_has_started() -> None:
    c = core({"warm": WARM, "deploy": {"needs": ["warm"], "run": ["deploy"]}})
    d = c.advance(Start(), 0)
    assert started(d) == ["warm", "deploy"]
    [warm] = [e for e in d.effects if isinstance(e, StartStep) and e.key == "warm"]
    assert warm.timeout == 300.0  # the runtime cancels it there
    assert events(d, "step_started")[0].data["background"] is True


def test_the_run_ends_only_once_its_background_step_has_ended() -> None:
    c = core({"warm": WARM, "deploy": {"needs": ["warm"], "run": ["deploy"]}})
    c.advance(Start(), 0)
    c.advance(StepCompleted("deploy", 1, {}), 1)
    assert c.state.status == RunStatus.RUNNING  # deploy is done; warm still runs
    d = c.advance(StepCompleted("warm", 1, {"stdout": "hot"}), 2)
    assert c.state.status == RunStatus.SUCCEEDED
    assert events(d, "run_finished")[0].data["outputs"]["warm"] == {"stdout": "hot"}


def test_a_background_failure_is_recorded_but_does_not_fail_the_run() -> None:
    c = core({"warm": WARM, "deploy": {"needs": ["warm"], "run": ["deploy"]}})
    c.advance(Start(), 0)
    d = c.advance(StepFailed("warm", 1, "timeout", "timed out after 5m"), 300)
    [failed] = events(d, "step_failed")
    assert failed.data["background"] is True and failed.data["tolerated"] is True
    assert c.state.failed_step is None and c.state.status == RunStatus.RUNNING
    c.advance(StepCompleted("deploy", 1, {}), 301)
    assert c.state.status == RunStatus.SUCCEEDED
    assert c.state.steps["warm"].status == StepStatus.FAILED


def test_a_background_step_takes_no_concurrency_slot() -> None:
    c = core({"warm": WARM, "a": {"run": ["a"]}, "b": {"run": ["b"]}}, concurrency=1)
    assert started(c.advance(Start(), 0)) == ["warm", "a"]
    assert started(c.advance(StepCompleted("a", 1, {}), 1)) == ["b"]


def test_a_retried_background_step_goes_ahead_of_queued_steps() -> None:
    warm = {**WARM, "retry": {"attempts": 2, "initial": "1s"}}
    c = core({"warm": warm, **{f"s{i}": {"run": ["x"]} for i in range(3)}}, concurrency=1)
    c.advance(Start(), 0)
    d = c.advance(StepFailed("warm", 1, "command", "exit 1"), 1)
    assert SetTimer("warm", "retry", 2.0) in d.effects
    assert started(c.advance(TimerFired("warm", "retry"), 2)) == ["warm"]  # s0 still holds the one slot


def test_dependents_see_a_started_background_step_as_succeeded_even_if_it_fails_first() -> None:
    c = core({"warm": WARM, "a": {"run": ["a"]}, "b": {"needs": ["a", "warm"], "run": ["b"]}})
    c.advance(Start(), 0)
    c.advance(StepFailed("warm", 1, "command", "exit 1"), 1)
    assert started(c.advance(StepCompleted("a", 1, {}), 2)) == ["b"]


def test_a_skipped_background_step_skips_its_dependents_like_any_skipped_need() -> None:
    c = core({"warm": {**WARM, "if": "false"}, "deploy": {"needs": ["warm"], "run": ["deploy"]}})
    c.advance(Start(), 0)
    assert c.state.steps["deploy"].status == StepStatus.SKIPPED
    assert c.state.status == RunStatus.SUCCEEDED


def test_a_foreground_failure_waits_for_the_background_step_then_fails_the_run() -> None:
    c = core({"warm": WARM, "deploy": {"run": ["deploy"]}})
    c.advance(Start(), 0)
    d = c.advance(StepFailed("deploy", 1, "command", "exit 1"), 1)
    assert not [e for e in d.effects if isinstance(e, CancelStep)]
    assert c.state.status == RunStatus.RUNNING
    c.advance(StepCompleted("warm", 1, {}), 2)
    assert c.state.status == RunStatus.FAILED and c.state.failed_step == "deploy"


def test_cancel_stops_a_background_step_too() -> None:
    c = core({"warm": WARM, "deploy": {"run": ["deploy"]}})
    c.advance(Start(), 0)
    d = c.advance(Cancel("ana"), 1)
    assert {e.key for e in d.effects if isinstance(e, CancelStep)} == {"deploy", "warm"}
    c.advance(StepFailed("deploy", 1, "cancelled", "cancelled"), 2)
    c.advance(StepFailed("warm", 1, "cancelled", "cancelled"), 2)
    assert c.state.status == RunStatus.CANCELLED


def resumed_with_warm_running(on_interrupt: str = "rerun") -> Core:
    spec = Workflow.model_validate(
        {
            "name": "t",
            "steps": {
                "warm": {**WARM, "on_interrupt": on_interrupt},
                "deploy": {"needs": ["warm"], "run": ["deploy"]},
            },
        }
    )
    state = RunState("r1", spec, {}, status=RunStatus.RUNNING)
    state.steps["warm"] = StepState("warm", "warm", status=StepStatus.RUNNING, attempt=1, started_at=0)
    state.steps["deploy"] = StepState(
        "deploy", "deploy", status=StepStatus.SUCCEEDED, attempt=1, started_at=0, finished_at=1
    )
    return Core(state)


def test_a_background_step_in_flight_at_a_crash_runs_again_and_nothing_else_does() -> None:
    c = resumed_with_warm_running()
    d = c.advance(Resume(), 10)
    assert [(e.key, e.attempt) for e in d.effects if isinstance(e, StartStep)] == [("warm", 2)]
    c.advance(StepCompleted("warm", 2, {}), 11)
    assert c.state.status == RunStatus.SUCCEEDED


def test_on_interrupt_fail_fails_the_background_step_but_not_the_run() -> None:
    c = resumed_with_warm_running("fail")
    d = c.advance(Resume((Interruption("warm", "other-host", 0.0),)), 10)
    assert not started(d)
    assert c.state.steps["warm"].status == StepStatus.FAILED
    assert c.state.status == RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{notify: hi, background: true}", "'background' applies to run, http, action and llm steps"),
        ("{run: [x], background: true}", "a background step needs a 'timeout:'"),
        ("{run: [x], background: true, timeout: 1m, for_each: [1]}", "cannot be combined with 'for_each'"),
    ],
)
def test_background_load_errors(step: str, message: str) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(f"name: w\nsteps:\n  a: {step}\n", "w.yaml")
    assert message in str(caught.value) and "w.yaml:3:3" in str(caught.value)


def test_reading_a_background_step_from_another_step_is_a_load_error_that_says_why() -> None:
    text = """name: w
steps:
  warm: {run: [warm], background: true, timeout: 5m}
  deploy: {needs: warm, run: [echo, "${{ steps.warm.outputs.stdout }}"]}
outputs:
  warmed: ${{ steps.warm.outputs.stdout }}
"""
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, "w.yaml")
    [error] = caught.value.errors
    assert error.line == 4
    assert "'warm' runs in the background" in error.message
    assert "Read it in the workflow's 'outputs:'" in error.message
    load_text(text.replace('echo, "${{ steps.warm.outputs.stdout }}"', "echo, hi"), "w.yaml")
