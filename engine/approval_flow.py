"""The approval step's rules in the core: what to ask, automatic approvals, and the revision loop."""

from __future__ import annotations

from typing import Any

from engine.core_base import CoreBase
from engine.core_base import latest_feedback as latest_feedback  # re-exported: bot/ reads it from here
from engine.expressions import ExpressionError, render, text_truthy
from engine.graph import downstream, upstream
from engine.signals import ApprovalDecided, RequestApproval
from engine.spec import ApprovalSpec, BudgetTier, Step, Workflow
from engine.state import StepState, StepStatus
from engine.text_caps import chat_text_problem


class ApprovalFlow:
    """Requests approvals and applies their outcomes to the run."""

    def __init__(self, core: CoreBase) -> None:
        self.core = core

    def request(self, step: StepState, spec: Step, ctx: dict[str, Any]) -> None:
        """Ask for a decision, or approve at once when ``auto_approve`` or a budget tier says so."""
        assert spec.approval is not None
        a = spec.approval
        core = self.core
        title = str(render(a.title, ctx))
        approvers, required, auto = list(a.approvers), a.required, None
        context = {k: str(render(v, ctx)) for k, v in a.context.items()}
        if a.budget is not None:
            amount = _amount(render(a.budget.amount, ctx))
            tier = _tier(a.budget.tiers, amount)
            context.setdefault("Amount", f"{amount:,.2f} {a.budget.currency}")
            approvers, required = list(tier.approvers or a.approvers), tier.required
            if tier.auto:
                auto = f"{amount:,.2f} {a.budget.currency} is within the automatic tier"
        if auto is None and a.auto_approve is not None and text_truthy(render(a.auto_approve, ctx)):
            auto = f"auto_approve: {a.auto_approve}"
        description = render(a.description, ctx)
        for what, text in (
            ("the approval's title", title),
            ("the approval's description", str(description or "")),
            ("the approval's context", "".join(f"{k}{v}" for k, v in context.items())),
        ):
            problem = chat_text_problem(what, text)
            if problem is not None:
                raise ValueError(problem)  # fails the step with this message, before a card is drawn
        core.start_record(step)
        step.revision = max(step.revision, 1)
        effect = RequestApproval(
            step.key,
            title,
            description,
            context,
            approvers,
            required,
            a.allow_self_approval,
            a.timeout,
            a.on_timeout,
            kind=a.kind,
            veto=a.veto,
            channel=a.channel,
            notify=a.notify_mode,
            escalation=tuple((r.after, r.remind, tuple(r.add_approvers)) for r in a.escalation),
            form={name: inp.model_dump() for name, inp in a.form.items()},
            revision=step.revision,
            request=step.attempt,
            max_revisions=a.max_revisions,
            can_revise=a.revise is not None,
            auto=auto,
            auto_after=a.auto_approve_after,
        )
        core.decision.effects.append(effect)
        core.emit(
            "approval_requested",
            step.key,
            title=title,
            approvers=approvers,
            required=required,
            revision=step.revision,
            request=step.attempt,
            auto=auto,
        )
        if auto is not None:
            core.emit("approval_decided", step.key, outcome="approved", reason=auto, auto=True)
            core.succeed(step, {"decision": "approved", "auto": True, "reason": auto, "approvers": []})
            return
        step.status, step.waiting_on = StepStatus.WAITING, "approval"

    def decided(self, sig: ApprovalDecided) -> None:
        """Apply a decision: approved, rejected, cancel (timeout), or changes requested."""
        core = self.core
        step = core.state.steps.get(sig.key)
        if step is None or step.status != StepStatus.WAITING or step.waiting_on != "approval":
            return
        step.waiting_on = None
        outputs = {"decision": sig.outcome, **sig.outputs}
        core.emit("approval_decided", step.key, outcome=sig.outcome, reason=sig.reason)
        spec = core.spec.steps[step.step_id].approval
        assert spec is not None
        if sig.outcome == "changes_requested":
            if spec.revise is not None and step.revision < spec.max_revisions:
                self._revise(step, spec, outputs)
                return
            reason = f"changes requested after the last allowed revision ({spec.max_revisions}): {sig.reason}"
            core.fail(step, "approval", reason, {}, outputs={**outputs, "decision": "rejected"})
        elif sig.outcome == "approved":
            core.succeed(step, outputs)
        elif sig.outcome == "cancel":
            step.outputs = outputs
            core.finish(step, StepStatus.CANCELLED, error=sig.reason or "approval timed out")
            core.cancel("approval", sig.reason or "the approval timed out")
        else:
            core.fail(step, "approval", sig.reason or "the approval was rejected", {}, outputs=outputs)

    def _revise(self, step: StepState, spec: ApprovalSpec, outputs: dict[str, Any]) -> None:
        """Send the run back to the ``revise`` step: it and everything after it run again."""
        core = self.core
        target = spec.revise
        assert target is not None
        again = {target, *downstream(core.spec.steps, target)}
        core.state.finish_counter += 1
        feedback = {**outputs, "revision": step.revision, "revise": target}
        for other in list(core.state.steps.values()):
            if other.step_id not in again or other.status == StepStatus.RUNNING:
                continue  # a parallel branch still running keeps going
            core.reset(other)
        step.outputs, step.finish_seq = feedback, core.state.finish_counter  # kept: `approval.feedback`
        core.decision.dirty.add(step.key)
        core.emit(
            "revision_requested",
            step.key,
            revise=target,
            revision=step.revision,
            feedback=outputs.get("feedback"),
        )
        step.revision += 1  # the next ask is the next revision
        core.schedule([target])


def revisions(workflow: Workflow, steps: dict[str, StepState]) -> dict[str, int]:
    """The revision each step is on, for the steps an approval's "Request changes" runs again (the
    approval itself, the step it revises and those between) once they have run in it: 2 or more. A status
    card says "revision 2" for these rather than "attempt 2", which would read like a retry.

    The approval counts its own revisions; a retry of the run asks it again without a new revision."""
    found: dict[str, int] = {}
    for step_id, spec in workflow.steps.items():
        asked = steps.get(step_id)
        if spec.approval is None or spec.approval.revise is None or asked is None:
            continue
        target = spec.approval.revise
        revision = asked.revision
        if revision < 2:
            continue
        before = upstream(workflow.steps, step_id) | {step_id}
        again = ({target} | downstream(workflow.steps, target)) & before
        for state in steps.values():
            if state.step_id in again and state.attempt >= revision:
                found[state.key] = max(found.get(state.key, 0), revision)
    return found


def _amount(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExpressionError(str(value), "a budget amount must be a number") from None


def _tier(tiers: list[BudgetTier], amount: float) -> BudgetTier:
    for tier in tiers:
        if tier.up_to is None or amount <= tier.up_to:
            return tier
    return tiers[-1]
