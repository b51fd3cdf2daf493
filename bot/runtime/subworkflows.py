"""Sub-workflow steps: a child run per attempt, created in the parent's own commit."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from bot.runtime.live import LiveRun
from bot.storage.journal import Batch
from engine.inputs import InputError, resolve_inputs
from engine.loader import WorkflowError, WorkflowInvalid, find_workflow, load_workflow
from engine.signals import StartStep, StepCompleted, StepFailed
from engine.state import RunState

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime


def child_id(parent: str, key: str, attempt: int) -> str:
    """The child run's id: derived, so a resumed parent finds the child it already started."""
    return hashlib.sha1(f"{parent}/{key}/{attempt}".encode()).hexdigest()[:12]


class ChildStarter:
    """Creates child runs for ``workflow:`` steps and reports their end to the parent."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._outcome: dict[str, StepCompleted | StepFailed | str] = {}

    async def prepare(self, batch: Batch, live: LiveRun, effect: StartStep) -> None:
        """Add the child run to the parent's batch, or note why it cannot start."""
        rt = self.runtime
        parent = live.core.state
        cid = child_id(parent.run_id, effect.key, effect.attempt)
        if rt.scope is not None:
            rt.scope.add(cid)  # a CLI client drives its run's sub-workflows too
        existing = await rt.store.run_row(cid)
        if existing is not None:
            if existing.status in ("succeeded", "failed", "cancelled", "compensated"):
                self._outcome[cid] = (
                    StepCompleted(effect.key, effect.attempt, existing.outputs or {})
                    if existing.status == "succeeded"
                    else StepFailed(
                        effect.key,
                        effect.attempt,
                        "child",
                        existing.error or f"sub-workflow {existing.status}",
                    )
                )
            return
        name = str(effect.params["workflow"])
        try:
            loaded = load_workflow(find_workflow(rt.settings.workflows_dir, name))
            inputs = resolve_inputs(loaded.spec, effect.params.get("with") or {})
        except (WorkflowError, WorkflowInvalid, InputError, OSError) as exc:
            self._outcome[cid] = StepFailed(
                effect.key, effect.attempt, "child", f"sub-workflow '{name}': {exc}"
            )
            return
        now = rt.clock()
        await rt.store.save_version(loaded.digest, loaded.spec.name, loaded.path, loaded.source, now)
        meta = {
            "parent_run_id": parent.run_id,
            "parent_step": effect.key,
            "parent_attempt": effect.attempt,
            **{k: v for k, v in parent.meta.items() if not k.startswith("parent_")},
        }
        state = RunState(cid, loaded.spec, inputs, started_by=parent.started_by, created_at=now, meta=meta)
        rt.store.new_run(batch, state, loaded.digest, now, rt.owner, now + rt.settings.lease_seconds)
        self._outcome[cid] = "created"

    def start(self, live: LiveRun, effect: StartStep) -> None:
        """After the commit: start the new child, or hand the parent its known outcome."""
        cid = child_id(live.run_id, effect.key, effect.attempt)
        outcome = self._outcome.pop(cid, None)
        if outcome == "created":
            self.runtime.spawn(self.runtime.wake(cid))
        elif isinstance(outcome, StepCompleted | StepFailed):
            live.push(outcome)

    async def cancel(self, live: LiveRun, key: str) -> None:
        """Cancel the child of a parent step."""
        step = live.core.state.steps[key]
        await self.runtime.cancel(child_id(live.run_id, key, step.attempt), by="parent run")
