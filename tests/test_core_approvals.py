"""Pure tests of approval rules in the core: automatic approvals, budget tiers and the revision loop."""

from __future__ import annotations

from typing import Any

from engine.core import Core
from engine.signals import ApprovalDecided, RequestApproval, Start, StartStep, StepCompleted
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepStatus


def core(steps: dict[str, Any], values: dict[str, Any] | None = None, **extra: Any) -> Core:
    spec = Workflow.model_validate({"name": "t", "steps": steps, **extra})
    return Core(RunState("r1", spec, values or {}))


def requests(decision: Any) -> list[RequestApproval]:
    return [e for e in decision.effects if isinstance(e, RequestApproval)]


def test_auto_approve_is_recorded_with_its_reason() -> None:
    c = core(
        {
            "ask": {"approval": {"title": "ok?", "auto_approve": "${{ inputs.env == 'staging' }}"}},
            "go": {"needs": ["ask"], "run": ["x"]},
        },
        {"env": "staging"},
        inputs={"env": {"default": "prod"}},
    )
    d = c.advance(Start(), 0)
    [req] = requests(d)
    assert req.auto == "auto_approve: ${{ inputs.env == 'staging' }}"
    assert c.state.steps["ask"].outputs["auto"] is True
    assert [e.key for e in d.effects if isinstance(e, StartStep)] == ["go"]


def test_budget_tiers_pick_who_approves() -> None:
    budget = {
        "amount": "${{ inputs.amount }}",
        "currency": "EUR",
        "tiers": [
            {"up_to": 500, "auto": True},
            {"up_to": 5000, "approvers": ["user:lead"]},
            {"approvers": ["group:finance"], "required": 2},
        ],
    }
    steps = {"ask": {"approval": {"title": "buy", "kind": "budget", "budget": budget}}}
    small = core(steps, {"amount": 120}, inputs={"amount": {"type": "number"}})
    small.advance(Start(), 0)
    assert small.state.status == RunStatus.SUCCEEDED
    large = core(steps, {"amount": 9000}, inputs={"amount": {"type": "number"}})
    [req] = requests(large.advance(Start(), 0))
    assert (req.approvers, req.required, req.auto) == (["group:finance"], 2, None)
    assert req.context["Amount"] == "9,000.00 EUR"


def test_request_changes_reruns_the_revised_step_and_asks_again() -> None:
    c = core(
        {
            "build": {"run": ["build", "${{ approval.feedback }}"]},
            "ask": {
                "needs": ["build"],
                "approval": {"title": "ship?", "revise": "build", "max_revisions": 3},
            },
            "ship": {"needs": ["ask"], "run": ["ship"]},
        }
    )
    c.advance(Start(), 0)
    c.advance(StepCompleted("build", 1, {}), 1)
    d = c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "bump the version"}, "bob"), 2)
    [again] = [e for e in d.effects if isinstance(e, StartStep)]
    assert (again.key, again.attempt, again.params["argv"]) == ("build", 2, ["build", "bump the version"])
    assert c.state.steps["ask"].status == StepStatus.PENDING
    [req] = requests(c.advance(StepCompleted("build", 2, {}), 3))
    assert req.revision == 2
    c.advance(ApprovalDecided("ask", "approved", {}, "ok"), 4)
    assert c.state.steps["ship"].status == StepStatus.RUNNING


def test_changes_past_max_revisions_count_as_a_reject() -> None:
    c = core(
        {
            "build": {"run": ["build"]},
            "ask": {
                "needs": ["build"],
                "approval": {"title": "ship?", "revise": "build", "max_revisions": 1},
            },
        }
    )
    c.advance(Start(), 0)
    c.advance(StepCompleted("build", 1, {}), 1)
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "again"}, "bob"), 2)
    assert c.state.steps["ask"].status == StepStatus.FAILED
    assert c.state.steps["ask"].outputs["decision"] == "rejected"
    assert "last allowed revision" in (c.state.error or "")


RELEASE: dict[str, Any] = {
    "build": {"run": ["build"]},
    "ask": {"needs": ["build"], "approval": {"title": "ship?", "revise": "build", "max_revisions": 3}},
    "deploy": {"needs": ["ask"], "run": ["deploy"]},
    "announce": {"needs": ["deploy"], "trigger": "all_done", "notify": "deploy: ${{ run.status }}"},
}


def test_retrying_a_rejected_approval_asks_again_and_announces_again() -> None:
    from engine.signals import Retry

    c = core(RELEASE)
    c.advance(Start(), 0)
    c.advance(StepCompleted("build", 1, {}), 1)
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "bump it"}, "bob"), 2)
    c.advance(StepCompleted("build", 2, {}), 3)
    c.advance(ApprovalDecided("ask", "rejected", {}, "not today"), 4)
    assert c.state.status == RunStatus.FAILED
    assert c.state.steps["announce"].outputs == {"text": "deploy: failed"}

    # Retry: asked anew, and the announcement that ran after the rejection waits for the deploy.
    d = c.advance(Retry("alice"), 5)
    [again] = requests(d)
    assert again.title == "ship?"
    assert c.state.steps["announce"].status == StepStatus.PENDING
    assert c.state.steps["build"].status == StepStatus.SUCCEEDED  # finished work is kept
    c.advance(ApprovalDecided("ask", "approved", {}, "ok"), 6)
    c.advance(StepCompleted("deploy", 1, {}), 7)
    assert c.state.status == RunStatus.SUCCEEDED
    assert c.state.steps["announce"].outputs == {"text": "deploy: succeeded"}


def test_a_retry_asks_again_as_a_new_request_in_the_same_revision() -> None:
    from engine.signals import Retry

    c = core({k: v for k, v in RELEASE.items() if k != "announce"})
    c.advance(Start(), 0)
    [first] = requests(c.advance(StepCompleted("build", 1, {}), 1))
    assert (first.revision, first.request) == (1, 1)
    c.advance(ApprovalDecided("ask", "rejected", {}, "not today"), 2)
    [second] = requests(c.advance(Retry("alice"), 3))
    assert (second.revision, second.request) == (1, 2)  # not "revision 2": nothing was revised
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "bump it"}, "bob"), 4)
    [third] = requests(c.advance(StepCompleted("build", 2, {}), 5))
    assert (third.revision, third.request) == (2, 3)
    # The retry used up no revision: two more requests for changes are allowed before the third counts.
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "again"}, "bob"), 6)
    [fourth] = requests(c.advance(StepCompleted("build", 3, {}), 7))
    assert (fourth.revision, fourth.request) == (3, 4)
    c.advance(ApprovalDecided("ask", "changes_requested", {"feedback": "once more"}, "bob"), 8)
    assert "last allowed revision (3)" in (c.state.error or "")
