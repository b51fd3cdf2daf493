"""The status card of a workflow run, built from plain data about the run.

``RunView`` is what the chat layer reads from storage; ``run_card`` turns it into a platform-neutral
``Card`` with the buttons that still apply (cancel while unfinished, retry a failed step, roll back a
finished run). No I/O and no clock: durations arrive already measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cards.limits import clip
from cards.model import Button, Card, Colour, Confirm, Field, StepLine, action_id

RunStatus = Literal[
    "pending", "running", "waiting", "succeeded", "failed", "cancelled", "compensating", "compensated"
]

STEP_ICONS = {
    "succeeded": "✓",
    "running": "⏳",
    "failed": "✗",
    "skipped": "⏭",
    "waiting": "⏸",
    "cancelled": "⊘",
    "pending": "·",
}
RUN_COLOURS: dict[str, Colour] = {
    "pending": "neutral",
    "running": "info",
    "waiting": "warning",
    "succeeded": "success",
    "failed": "danger",
    "cancelled": "neutral",
    "compensating": "warning",
    "compensated": "warning",
}
FINISHED = frozenset({"succeeded", "failed", "cancelled", "compensated"})
INPUT_MAX = 100
STEP_ERROR_MAX = 200
RUN_ERROR_MAX = 500
OUTPUTS_MAX = 300


@dataclass(frozen=True)
class StepView:
    """One step of a run, as the card shows it."""

    key: str
    status: str
    attempt: int = 1
    duration: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunView:
    """What the card needs to know about a run; inputs arrive with secrets already masked."""

    run_id: str
    workflow: str
    status: RunStatus
    started_by: str
    inputs: Mapping[str, object] = field(default_factory=dict)
    steps: tuple[StepView, ...] = ()
    error: str | None = None
    outputs: Mapping[str, object] | None = None
    waiting_for: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has reached a final status."""
        return self.status in FINISHED

    @property
    def can_cancel(self) -> bool:
        """Cancel applies while the run is unfinished."""
        return not self.finished

    @property
    def can_retry(self) -> bool:
        """Retry applies to a failed run with a failed step."""
        return self.status == "failed" and any(s.status == "failed" for s in self.steps)

    @property
    def can_rollback(self) -> bool:
        """Rollback applies to a run that finished without being rolled back already."""
        return self.status in ("succeeded", "failed", "cancelled")


def duration_text(seconds: float) -> str:
    """A short duration: "0.4s", "12.0s", "3m 05s", "2h 03m", "1d 4h"."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def _short(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return clip(text, limit)


def _step_line(step: StepView) -> StepLine:
    parts = [duration_text(step.duration)] if step.duration is not None else []
    if step.attempt > 1:
        parts.append(f"attempt {step.attempt}")
    if step.error:
        parts.append(clip(" ".join(step.error.split()), STEP_ERROR_MAX))
    return StepLine(STEP_ICONS.get(step.status, "•"), step.key, " · ".join(parts))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _outcome(view: RunView) -> str:
    done = sum(1 for s in view.steps if s.status in ("succeeded", "skipped"))
    progress = f"{done} of {len(view.steps)} steps done." if view.steps else ""
    failed = next((s.key for s in view.steps if s.status == "failed"), None)
    error = clip(view.error, RUN_ERROR_MAX) if view.error else ""
    text = {
        "pending": "Queued.",
        "running": f"Running. {progress}",
        "waiting": _sentence(f"Waiting for {view.waiting_for or 'an event'}"),
        "succeeded": "Succeeded.",
        "failed": (f"Failed at {failed}" if failed else "Failed") + (f": {error}" if error else "."),
        "cancelled": f"Cancelled. {progress}",
        "compensating": "Rolling back the completed steps.",
        "compensated": "Rolled back." + (f" {error}" if error else ""),
    }[view.status].strip()
    if view.finished and view.outputs:
        pairs = ", ".join(f"{k}={_short(v, INPUT_MAX)}" for k, v in view.outputs.items())
        text += "\n" + clip(f"Outputs: {pairs}", OUTPUTS_MAX)
    return text


def _buttons(view: RunView) -> tuple[Button, ...]:
    buttons = []
    if view.can_cancel:
        ask = Confirm("Cancel this run?", "Running steps are stopped.", "Cancel run", "Keep running")
        buttons.append(Button("Cancel", action_id("run", view.run_id, "cancel"), "danger", ask))
    if view.can_retry:
        buttons.append(Button("Retry failed step", action_id("run", view.run_id, "retry"), "primary"))
    if view.can_rollback:
        ask = Confirm("Roll back this run?", "Completed steps are undone, newest first.", "Roll back", "Keep")
        buttons.append(Button("Rollback", action_id("run", view.run_id, "rollback"), "danger", ask))
    return tuple(buttons)


def run_card(view: RunView) -> Card:
    """The status card of a run: outcome, who started it, inputs, step lines and the buttons that apply."""
    fields = [Field("Started by", view.started_by), Field("Status", view.status)]
    fields += [Field(name, _short(value, INPUT_MAX) or "—") for name, value in view.inputs.items()]
    return Card(
        title=f"{view.workflow} · run {view.run_id[:6]}",
        text=_outcome(view),
        status=view.status,
        colour=RUN_COLOURS[view.status],
        fields=tuple(fields),
        steps=tuple(_step_line(s) for s in view.steps),
        context=(f"run {view.run_id}",),
        buttons=_buttons(view),
    )
