"""Pure tests of checkpoints and rewind in the decision core: signals in, events and effects out."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from engine.checkpoints import checkpoints, is_undone
from engine.core import Core
from engine.schema import json_schema
from engine.signals import Rewind, Rollback, Start, StartStep, StepCompleted, StepFailed
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepStatus

CHAIN = {
    "build": {"run": ["build"], "checkpoint": "built", "outputs": {"v": "${{ result.stdout }}"}},
    "deploy": {"needs": ["build"], "run": ["deploy"], "compensate": {"run": ["undeploy"]}},
    "verify": {"needs": ["deploy"], "run": ["verify"], "compensate": {"run": ["unverify"]}},
    "smoke": {"needs": ["verify"], "run": ["smoke"]},
}


def core(steps: dict[str, Any]) -> Core:
    return Core(RunState("r1", Workflow.model_validate({"name": "t", "steps": steps}), {}))


def argv(decision: Any) -> list[list[str]]:
    return [e.params["argv"] for e in decision.effects if isinstance(e, StartStep)]


def events(decision: Any) -> list[str]:
    return [e.type for e in decision.events]


def failed_chain() -> Core:
    c = core(CHAIN)
    c.advance(Start(), 0)
    d = c.advance(StepCompleted("build", 1, {"stdout": "v1"}), 1)
    assert "checkpoint_saved" in events(d)
    saved = next(e for e in d.events if e.type == "checkpoint_saved")
    assert saved.data["name"] == "built" and saved.data["steps"] == ["build"]
    assert saved.data["outputs"] == {"build": {"v": "v1"}}
    c.advance(StepCompleted("deploy", 1, {}), 2)
    c.advance(StepCompleted("verify", 1, {}), 3)
    c.advance(StepFailed("smoke", 1, "command", "exited 1"), 4)
    assert c.state.status == RunStatus.FAILED
    return c


def test_rewind_compensates_newest_first_then_runs_on_to_success() -> None:
    c = failed_chain()
    d = c.advance(Rewind("alice", "built"), 5)
    assert events(d)[:2] == ["rewind_requested", "compensation_started"]
    assert argv(d) == [["unverify"]]
    assert c.state.status == RunStatus.COMPENSATING and c.state.rewind_to == "build"
    d = c.advance(StepCompleted("verify", 1, {}, compensation=True), 6)
    assert argv(d) == [["undeploy"]]
    d = c.advance(StepCompleted("deploy", 1, {}, compensation=True), 7)
    assert "run_rewound" in events(d)
    rewound = next(e for e in d.events if e.type == "run_rewound")
    assert rewound.data == {"to": "built", "step": "build", "undone": ["deploy", "smoke", "verify"]}
    assert argv(d) == [["deploy"]]  # carried on from the checkpoint: build is not run again
    assert c.state.status == RunStatus.RUNNING and c.state.error is None and c.state.failed_step is None
    assert c.state.steps["build"].outputs == {"v": "v1"}
    assert is_undone(c.state.steps["verify"]) and c.state.steps["verify"].status == StepStatus.PENDING
    assert not is_undone(c.state.steps["deploy"])  # it is running again
    c.advance(StepCompleted("deploy", 2, {}), 8)
    c.advance(StepCompleted("verify", 2, {}), 9)
    c.advance(StepCompleted("smoke", 2, {}), 10)
    assert c.state.status == RunStatus.SUCCEEDED


def test_a_second_rewind_works_and_compensates_only_what_ran_again() -> None:
    c = failed_chain()
    c.advance(Rewind("alice", "built"), 5)
    c.advance(StepCompleted("verify", 1, {}, compensation=True), 6)
    c.advance(StepCompleted("deploy", 1, {}, compensation=True), 7)
    c.advance(StepCompleted("deploy", 2, {}), 8)
    c.advance(StepFailed("verify", 2, "command", "still broken"), 9)
    assert c.state.status == RunStatus.FAILED
    d = c.advance(Rewind("alice", "deploy"), 10)  # a step id works as well as a checkpoint name
    assert argv(d) == [["verify"]]  # nothing to compensate: verify failed, so it goes on at once
    assert "run_rewound" in events(d) and "compensation_started" not in events(d)
    c.advance(StepCompleted("verify", 3, {}), 11)
    c.advance(StepCompleted("smoke", 2, {}), 12)
    assert c.state.status == RunStatus.SUCCEEDED


def test_rewind_is_refused_with_a_reason() -> None:
    c = core(CHAIN)
    c.advance(Start(), 0)
    d = c.advance(Rewind("alice", "built"), 1)
    assert "only a finished run can be rewound" in d.events[0].data["reason"]
    c = failed_chain()
    d = c.advance(Rewind("alice", "nope"), 5)
    assert d.events[0].data["reason"] == "no checkpoint or step is called 'nope' (checkpoints: built)"
    d = c.advance(Rewind("alice", "smoke"), 5)
    assert "step 'smoke' is failed" in d.events[0].data["reason"]
    assert c.state.status == RunStatus.FAILED


def test_rollback_still_ends_compensated_and_a_rewind_can_follow() -> None:
    c = failed_chain()
    c.advance(Rollback("alice", "build"), 5)
    c.advance(StepCompleted("verify", 1, {}, compensation=True), 6)
    c.advance(StepCompleted("deploy", 1, {}, compensation=True), 7)
    assert c.state.status == RunStatus.COMPENSATED
    assert is_undone(c.state.steps["deploy"])
    d = c.advance(Rewind("alice", "deploy"), 8)
    assert "was undone already" in d.events[0].data["reason"]
    d = c.advance(Rewind("alice", "built"), 8)
    assert argv(d) == [["deploy"]]  # already compensated: nothing is undone twice


def test_checkpoint_names_are_checked() -> None:
    assert checkpoints(Workflow.model_validate({"name": "t", "steps": CHAIN}).steps) == {"built": "build"}
    with pytest.raises(ValidationError, match="declared by both 'a' and 'b'"):
        Workflow.model_validate(
            {
                "name": "t",
                "steps": {"a": {"run": ["a"], "checkpoint": "x"}, "b": {"run": ["b"], "checkpoint": "x"}},
            }
        )
    with pytest.raises(ValidationError, match="has the name of another step"):
        Workflow.model_validate(
            {"name": "t", "steps": {"a": {"run": ["a"], "checkpoint": "b"}, "b": {"run": ["b"]}}}
        )
    with pytest.raises(ValidationError, match="must start with a letter"):
        Workflow.model_validate({"name": "t", "steps": {"a": {"run": ["a"], "checkpoint": "no way"}}})


def test_the_json_schema_knows_checkpoints() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    ok = {
        "name": "t",
        "steps": {"a": {"run": ["a"], "checkpoint": True}, "b": {"run": ["b"], "checkpoint": "x"}},
    }
    assert list(validator.iter_errors(ok)) == []
    bad = {"name": "t", "steps": {"a": {"run": ["a"], "checkpoint": "no way"}}}
    assert list(validator.iter_errors(bad))
