"""Pure tests of on_interrupt in the decision core: a resume that names steps interrupted on another host."""

from __future__ import annotations

from engine.core import Core
from engine.interrupts import clock_text
from engine.signals import ApprovalDecided, Interruption, RequestApproval, Resume, StartStep
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepState, StepStatus

T = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def interrupted(policy: str) -> Core:
    spec = Workflow.model_validate(
        {
            "name": "t",
            "steps": {
                "deploy": {"run": ["deploy"], "on_interrupt": policy},
                "after": {"needs": ["deploy"], "run": ["after"]},
            },
        }
    )
    state = RunState("r1", spec, {}, status=RunStatus.RUNNING)
    state.steps["deploy"] = StepState("deploy", "deploy", status=StepStatus.RUNNING, attempt=1, started_at=T)
    return Core(state)


def started(decision: object) -> list[tuple[str, int]]:
    return [(e.key, e.attempt) for e in decision.effects if isinstance(e, StartStep)]  # type: ignore[attr-defined]


def test_a_step_interrupted_on_this_host_runs_again_whatever_its_rule() -> None:
    c = interrupted("fail")
    d = c.advance(Resume(), T + 60)
    assert started(d) == [("deploy", 2)]
    [event] = [e for e in d.events if e.type == "step_interrupted"]
    assert event.data == {"attempt": 1, "action": "rerun"}


def test_fail_fails_the_step_and_the_run() -> None:
    c = interrupted("fail")
    d = c.advance(Resume((Interruption("deploy", "build-7", T),)), T + 60)
    assert started(d) == []
    step = c.state.steps["deploy"]
    assert (step.status, step.error_kind) == (StepStatus.FAILED, "interrupted")
    assert step.error == (
        "was interrupted by a crash on build-7 (it started at 08:00 UTC); not run again (on_interrupt: fail)"
    )
    assert c.state.status == RunStatus.FAILED


def test_ask_waits_for_an_answer_then_reruns_or_fails() -> None:
    c = interrupted("ask")
    d = c.advance(Resume((Interruption("deploy", "build-7", T),)), T + 60)
    [ask] = [e for e in d.effects if isinstance(e, RequestApproval)]
    assert ask.title == "deploy was interrupted by a crash (it started at 08:00 UTC); run it again?"
    assert (ask.approvers, ask.required, ask.allow_self_approval, ask.timeout) == ([], 1, True, None)
    assert c.state.status == RunStatus.WAITING
    d = c.advance(ApprovalDecided("deploy", "approved"), T + 120)
    assert started(d) == [("deploy", 2)]

    c = interrupted("ask")
    c.advance(Resume((Interruption("deploy", "build-7", T),)), T + 60)
    c.advance(ApprovalDecided("deploy", "rejected", reason="rejected by console:bob"), T + 120)
    assert (
        c.state.steps["deploy"].error == "interrupted by a crash and not run again: rejected by console:bob"
    )
    assert c.state.status == RunStatus.FAILED


def test_a_program_that_would_not_die_is_never_run_beside_itself() -> None:
    c = interrupted("rerun")
    c.advance(Resume((Interruption("deploy", "here", T, still_running=True),)), T + 60)
    step = c.state.steps["deploy"]
    assert step.status == StepStatus.FAILED and "could not be stopped" in (step.error or "")


def test_times_name_the_day_when_it_is_not_today() -> None:
    assert clock_text(T, T + 60) == "08:00 UTC"
    assert clock_text(T, T + 86_400) == "15 Jan 08:00 UTC"
