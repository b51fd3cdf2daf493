"""Pure tests of the decision core: signals in, events and effects out, no I/O and no clock."""

from __future__ import annotations

from typing import Any

from engine.core import Core
from engine.rules import retry_delay, trigger_allows
from engine.signals import (
    ApprovalDecided,
    Cancel,
    CancelStep,
    RequestApproval,
    Resume,
    Rollback,
    SetTimer,
    Start,
    StartStep,
    StepCompleted,
    StepFailed,
    TimerFired,
)
from engine.spec import RetrySpec, Workflow
from engine.state import RunState, RunStatus, StepState, StepStatus


def core(steps: dict[str, Any], **extra: Any) -> Core:
    spec = Workflow.model_validate({"name": "t", "steps": steps, **extra})
    return Core(RunState("r1", spec, extra.get("_inputs", {})))


def started(decision: Any) -> list[str]:
    return [e.key for e in decision.effects if isinstance(e, StartStep)]


def test_a_step_starts_as_soon_as_its_own_needs_finish() -> None:
    c = core(
        {
            "a": {"run": ["a"]},
            "slow": {"run": ["s"]},
            "b": {"needs": ["a"], "run": ["b"]},
        }
    )
    assert started(c.advance(Start(), 0)) == ["a", "slow"]
    # b does not wait for its unrelated sibling "slow"
    assert started(c.advance(StepCompleted("a", 1, {}), 1)) == ["b"]
    assert c.state.status == RunStatus.RUNNING


def test_concurrency_caps_running_activities() -> None:
    c = core({f"s{i}": {"run": ["x"]} for i in range(5)}, concurrency=2)
    assert started(c.advance(Start(), 0)) == ["s0", "s1"]
    assert started(c.advance(StepCompleted("s0", 1, {}), 1)) == ["s2"]


def test_failure_skips_dependents_but_all_done_runs() -> None:
    c = core(
        {
            "a": {"run": ["a"]},
            "b": {"needs": ["a"], "run": ["b"]},
            "cleanup": {"needs": ["b"], "trigger": "all_done", "notify": "status ${{ run.status }}"},
        }
    )
    c.advance(Start(), 0)
    d = c.advance(StepFailed("a", 1, "command", "exit 1"), 1)
    assert c.state.steps["b"].status == StepStatus.SKIPPED
    assert c.state.steps["cleanup"].outputs == {"text": "status failed"}
    assert c.state.status == RunStatus.FAILED
    assert [e.type for e in d.events][-1] == "run_finished"


def test_retry_waits_on_a_durable_timer_then_runs_again() -> None:
    c = core({"a": {"run": ["a"], "retry": {"attempts": 2, "initial": "5s"}}})
    c.advance(Start(), 100)
    d = c.advance(StepFailed("a", 1, "command", "exit 1"), 101)
    assert SetTimer("a", "retry", 106.0) in d.effects
    assert c.state.status == RunStatus.WAITING
    d = c.advance(TimerFired("a", "retry"), 106)
    assert [(e.key, e.attempt) for e in d.effects if isinstance(e, StartStep)] == [("a", 2)]


def test_retry_only_on_listed_error_kinds() -> None:
    c = core({"a": {"run": ["a"], "retry": {"attempts": 3, "on": ["timeout"]}}})
    c.advance(Start(), 0)
    c.advance(StepFailed("a", 1, "command", "exit 1"), 1)
    assert c.state.steps["a"].status == StepStatus.FAILED


def test_a_stale_report_is_ignored() -> None:
    c = core({"a": {"run": ["a"], "retry": {"attempts": 2, "initial": "1s"}}})
    c.advance(Start(), 0)
    c.advance(StepFailed("a", 1, "command", "boom"), 1)
    d = c.advance(StepCompleted("a", 1, {"late": True}), 2)  # attempt 1 already settled
    assert d.events == [] and c.state.steps["a"].status == StepStatus.WAITING


def test_resume_reruns_the_step_that_was_in_flight_with_the_next_attempt() -> None:
    spec = Workflow.model_validate(
        {"name": "t", "steps": {"a": {"run": ["a"]}, "b": {"needs": ["a"], "run": ["b"]}}}
    )
    state = RunState("r1", spec, {}, status=RunStatus.RUNNING)
    state.steps["a"] = StepState("a", "a", status=StepStatus.SUCCEEDED, attempt=1, finish_seq=1)
    state.steps["b"] = StepState("b", "b", status=StepStatus.RUNNING, attempt=1)
    c = Core(state)
    d = c.advance(Resume(), 10)
    assert [(e.key, e.attempt) for e in d.effects if isinstance(e, StartStep)] == [("b", 2)]
    assert ("step_interrupted", "b") in [(e.type, e.key) for e in d.events]


def test_expressions_render_into_single_argv_items() -> None:
    c = core({"a": {"run": ["echo", "${{ inputs.words }}"]}}, inputs={"words": {"type": "string"}})
    c.state.inputs["words"] = "two words; rm -rf /"
    d = c.advance(Start(), 0)
    [effect] = [e for e in d.effects if isinstance(e, StartStep)]
    assert effect.params["argv"] == ["echo", "two words; rm -rf /"]


def test_approval_request_then_rejection_fails_the_step_with_decision_output() -> None:
    c = core(
        {
            "ask": {"approval": {"title": "Deploy ${{ inputs.svc }}?", "required": 2}},
            "on_reject": {
                "needs": ["ask"],
                "trigger": "one_failed",
                "notify": "${{ steps.ask.outputs.decision }}",
            },
        },
        inputs={"svc": {"default": "api"}},
    )
    c.state.inputs["svc"] = "api"
    d = c.advance(Start(), 0)
    [req] = [e for e in d.effects if isinstance(e, RequestApproval)]
    assert req.title == "Deploy api?" and req.required == 2
    c.advance(ApprovalDecided("ask", "rejected", {}, "no"), 5)
    assert c.state.steps["on_reject"].outputs == {"text": "rejected"}
    assert c.state.status == RunStatus.FAILED


def test_cancel_cancels_running_steps_and_finishes_when_they_stop() -> None:
    c = core({"a": {"run": ["a"]}, "b": {"run": ["b"]}})
    c.advance(Start(), 0)
    d = c.advance(Cancel("bob"), 1)
    assert {e.key for e in d.effects if isinstance(e, CancelStep)} == {"a", "b"}
    c.advance(StepFailed("a", 1, "cancelled", "cancelled"), 2)
    assert c.state.status == RunStatus.RUNNING
    c.advance(StepFailed("b", 1, "cancelled", "cancelled"), 2)
    assert c.state.status == RunStatus.CANCELLED


def test_rollback_compensates_newest_first() -> None:
    c = core(
        {
            "a": {"run": ["a"], "compensate": {"run": ["undo-a"]}},
            "b": {"needs": ["a"], "run": ["b"], "compensate": {"run": ["undo-b"]}},
        }
    )
    c.advance(Start(), 0)
    c.advance(StepCompleted("a", 1, {}), 1)
    c.advance(StepCompleted("b", 1, {}), 2)
    assert c.state.status == RunStatus.SUCCEEDED
    d = c.advance(Rollback("alice"), 3)
    assert [e.params["argv"] for e in d.effects if isinstance(e, StartStep)] == [["undo-b"]]
    d = c.advance(StepCompleted("b", 1, {}, compensation=True), 4)
    assert [e.params["argv"] for e in d.effects if isinstance(e, StartStep)] == [["undo-a"]]
    c.advance(StepCompleted("a", 1, {}, compensation=True), 5)
    assert c.state.status == RunStatus.COMPENSATED


def test_fan_out_outputs_keep_item_order() -> None:
    c = core(
        {"f": {"for_each": '${{ fromJSON(\'["x", "y"]\') }}', "action": "m:f", "with": {"v": "${{ item }}"}}}
    )
    d = c.advance(Start(), 0)
    assert [e.params["with"] for e in d.effects if isinstance(e, StartStep)] == [{"v": "x"}, {"v": "y"}]
    c.advance(StepCompleted("f[1]", 1, {"n": 1}), 1)
    c.advance(StepCompleted("f[0]", 1, {"n": 0}), 2)
    assert c.state.steps["f"].outputs == {"items": [{"n": 0}, {"n": 1}]}
    assert c.state.status == RunStatus.SUCCEEDED


def test_oversized_outputs_fail_the_step_with_a_clear_message() -> None:
    c = core({"a": {"run": ["a"]}})
    c.advance(Start(), 0)
    c.advance(StepCompleted("a", 1, {"stdout": "x" * 300_000}), 1)
    assert "the limit is 262,144" in (c.state.steps["a"].error or "")


def test_trigger_rules() -> None:
    ok = StepState("a", "a", status=StepStatus.SUCCEEDED)
    bad = StepState("b", "b", status=StepStatus.FAILED)
    skipped = StepState("c", "c", status=StepStatus.SKIPPED)
    assert trigger_allows("all_success", [ok]) and not trigger_allows("all_success", [ok, bad])
    assert trigger_allows("one_success", [ok, bad]) and not trigger_allows("one_success", [bad])
    assert trigger_allows("one_failed", [ok, bad]) and not trigger_allows("one_failed", [ok])
    assert trigger_allows("none_failed", [ok, skipped]) and not trigger_allows("none_failed", [bad])
    assert trigger_allows("all_done", [bad, skipped])


def test_retry_delays_follow_temporal_defaults() -> None:
    policy = RetrySpec()
    assert [retry_delay(policy, n) for n in (1, 2, 3, 8)] == [1.0, 2.0, 4.0, 100.0]
    assert retry_delay(RetrySpec(backoff="fixed", initial="3s"), 5) == 3.0


def test_continue_on_error_lets_dependents_run_and_the_run_succeed() -> None:
    c = core({"flaky": {"run": ["x"], "continue_on_error": True}, "next": {"needs": ["flaky"], "run": ["y"]}})
    c.advance(Start(), 0)
    d = c.advance(StepFailed("flaky", 1, "command", "exit 1"), 1)
    assert started(d) == ["next"]
    c.advance(StepCompleted("next", 1, {}), 2)
    assert c.state.status == RunStatus.SUCCEEDED


def test_run_timeout_cancels_running_steps_and_fails_the_run() -> None:
    c = core({"slow": {"run": ["sleep"]}}, timeout="1h")
    d = c.advance(Start(), 0)
    assert SetTimer("", "run_timeout", 3600.0) in d.effects
    d = c.advance(TimerFired("", "run_timeout"), 3600)
    assert CancelStep("slow") in d.effects
    c.advance(StepFailed("slow", 1, "cancelled", "cancelled"), 3601)
    assert c.state.status == RunStatus.FAILED
    assert "timed out" in (c.state.error or "")


def test_fan_out_wider_than_the_limit_fails_with_a_clear_message() -> None:
    c = core({"f": {"for_each": "${{ inputs.many }}", "run": ["x"]}}, inputs={"many": {"type": "list"}})
    c.state.inputs["many"] = list(range(20_000))
    c.advance(Start(), 0)
    assert c.state.steps["f"].error == "'for_each' gave 20000 items; the limit is 10000"
    assert c.state.status == RunStatus.FAILED


def test_a_bad_expression_at_run_time_fails_the_step_naming_the_expression() -> None:
    c = core(
        {"a": {"run": ["echo", "${{ fromJSON(inputs.missing.deeper) }}"]}},
        inputs={"missing": {"type": "object"}},
    )
    c.state.inputs["missing"] = {}
    c.advance(Start(), 0)
    assert "inputs.missing.deeper" in (c.state.steps["a"].error or "")
    assert c.state.status == RunStatus.FAILED


def test_unavailable_skips_the_step_instead_of_failing_the_run() -> None:
    c = core(
        {
            "ask": {"llm": {"prompt": "hi"}},
            "after": {"needs": ["ask"], "trigger": "none_failed", "run": ["x"]},
        }
    )
    c.advance(Start(), 0)
    d = c.advance(StepFailed("ask", 1, "unavailable", "No LLM is configured"), 1)
    assert c.state.steps["ask"].status == StepStatus.SKIPPED
    assert started(d) == ["after"]


def test_retry_runs_failed_steps_again_and_keeps_finished_ones() -> None:
    from engine.signals import Retry

    c = core({"a": {"run": ["a"]}, "b": {"needs": ["a"], "run": ["b"]}, "c": {"needs": ["b"], "run": ["c"]}})
    c.advance(Start(), 0)
    c.advance(StepCompleted("a", 1, {}), 1)
    c.advance(StepFailed("b", 1, "command", "exit 1"), 2)
    assert c.state.status == RunStatus.FAILED and c.state.steps["c"].status == StepStatus.SKIPPED
    d = c.advance(Retry("alice"), 3)
    assert [(e.key, e.attempt) for e in d.effects if isinstance(e, StartStep)] == [("b", 2)]
    c.advance(StepCompleted("b", 2, {}), 4)
    c.advance(StepCompleted("c", 1, {}), 5)
    assert c.state.status == RunStatus.SUCCEEDED
    assert c.state.steps["a"].attempt == 1
