"""The status card of a workflow run, built from plain data about the run.

``RunView`` is what the chat layer reads from storage; ``run_card`` turns it into a platform-neutral
``Card`` with the buttons that still apply (cancel while unfinished, retry a failed step, roll back a
finished run). No I/O and no clock: durations arrive already measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    "compensated": "↺",
}
# The word beside a step whose mark alone could be misread (a step that did not do its work).
STEP_WORDS = {"skipped": "skipped", "cancelled": "cancelled", "compensated": "undone"}
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
OUTPUT_LINES = 5  # outputs shown on the card; the thread's closing message holds them all
OUTPUT_VALUE_MAX = 80
REWIND_BUTTONS = 2  # with Retry and Rollback, within Discord's five buttons a row


@dataclass(frozen=True)
class StepView:
    """One step of a run, as the card shows it."""

    key: str
    status: str
    attempt: int = 1
    duration: float | None = None
    error: str | None = None
    items_done: int | None = None  # a fan-out step: its finished items ...
    items_total: int | None = None  # ... of how many
    compensation: str | None = None  # None | running | succeeded | failed (rolled back) | undone | reused
    revision: int | None = None  # run again by an approval's "Request changes": which revision (2, 3, …)
    approval: bool = False  # an approval step: each attempt is a request (asked again by a retry)
    background: bool = False  # nothing waits for it; its failure does not fail the run

    @property
    def mark(self) -> str:
        """The status the step's line shows: a step rolled back, or undone by a rewind and not run again
        yet, is "compensated" (↺ undone), whatever it did before."""
        if self.compensation == "undone" or (self.compensation == "succeeded" and self.status == "succeeded"):
            return "compensated"
        return self.status


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
    started_at: float | None = None  # epoch seconds
    elapsed: float | None = None  # seconds from start to now, or to the end of a finished run
    checkpoints: tuple[str, ...] = ()  # the checkpoints a rewind can go back to, oldest first
    rerun_of: tuple[str, str] | None = None  # (run, step): a rerun of that run from that step
    rewinding_to: str | None = None  # while a rewind compensates: the step it goes back to
    queued: str | None = None  # a pending run's turn: "2nd in line for deploy-prod", "waiting for capacity"

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
    def rewind_targets(self) -> tuple[str, ...]:
        """The checkpoints the card offers to rewind to: a failed run's newest two."""
        return self.checkpoints[-REWIND_BUTTONS:] if self.status == "failed" else ()

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
    if value is None or value == "":
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return clip(" ".join(text.split()), limit)


def hhmm_utc(moment: float) -> str:
    """``14:02 UTC``."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M UTC")


def _step_line(step: StepView) -> StepLine:
    parts = [duration_text(step.duration)] if step.duration is not None else []
    if step.items_total is not None:
        parts.append(f"{step.items_done or 0} of {step.items_total} items")
    word = STEP_WORDS.get(step.mark)
    if word:
        parts.append(word)
    if step.compensation == "reused":
        parts.append("reused")
    if step.background:
        parts.append("background, did not fail the run" if step.mark == "failed" else "background")
    tries = step.attempt
    if step.revision is not None and step.revision > 1:
        # Each revision ran the step once more: that is a revision, not a retry; only retries within
        # this revision count as attempts.
        parts.append(f"revision {step.revision}")
        tries -= step.revision - 1
    if step.approval:
        # The n-th ask of the step; shown when a retry of the run asked again, beyond its revisions.
        if step.attempt > max(step.revision or 1, 1):
            parts.append(f"request {step.attempt}")
    elif tries > 1:
        parts.append(f"attempt {tries}")
    if step.error and step.mark != "compensated":
        parts.append(clip(" ".join(step.error.split()), STEP_ERROR_MAX))
    return StepLine(STEP_ICONS.get(step.mark, "•"), step.key, " · ".join(parts))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _count(view: RunView, mark: str) -> int:
    return sum(1 for s in view.steps if s.mark == mark)


def _progress(view: RunView) -> str:
    """``2 of 5 steps done`` (done means succeeded), with the skipped ones named when there are some."""
    if not view.steps:
        return ""
    text = f"{_count(view, 'succeeded')} of {len(view.steps)} steps done"
    skipped = _count(view, "skipped")
    return text + (f", {skipped} skipped" if skipped else "")


def _outcome(view: RunView) -> str:
    progress = _progress(view)
    failed = next((s.key for s in view.steps if s.status == "failed" and not s.background), None)
    current = [s.key + (" (background)" if s.background else "") for s in view.steps if s.status == "running"]
    error = clip(view.error, RUN_ERROR_MAX) if view.error else ""
    undone = _count(view, "compensated")
    text = {
        "pending": f"Queued: {view.queued}." if view.queued else "Queued.",
        "running": (f"Running {', '.join(current)}. " if current else "Running. ") + _sentence(progress),
        "waiting": _sentence(f"Waiting for {view.waiting_for or 'an event'}"),
        "succeeded": "Succeeded.",
        "failed": (f"Failed at {failed}" if failed else "Failed") + (f": {error}" if error else "."),
        "cancelled": "Cancelled" + (f" with {progress}." if progress else "."),
        "compensating": (
            f"Rewinding to {view.rewinding_to}: undoing the later steps, newest first."
            if view.rewinding_to
            else "Rolling back the completed steps."
        ),
        "compensated": f"Rolled back: {undone} step{'s' if undone != 1 else ''} undone."
        + (f" {error}" if error else ""),
    }[view.status].strip()
    behind = [s.key for s in view.steps if s.background and s.status == "failed"]
    if behind:
        named = ", ".join(behind)
        text += f"\nBackground step{'s' if len(behind) > 1 else ''} {named} failed; the run went on."
    if view.finished and view.outputs:
        text += "\n" + "\n".join(_output_lines(view.outputs))
    return text


def _output_lines(outputs: Mapping[str, object]) -> list[str]:
    """A few ``key: value`` lines; the rest are counted (the thread's closing message has every value)."""
    shown = list(outputs.items())[:OUTPUT_LINES]
    lines = [f"{key}: {_short(value, OUTPUT_VALUE_MAX)}" for key, value in shown]
    hidden = len(outputs) - OUTPUT_LINES
    if hidden > 0:
        lines.append(f"… and {hidden} more output{'s' if hidden != 1 else ''} in the thread")
    return lines


def _timing(view: RunView) -> list[Field]:
    if view.started_at is None:
        return []
    value = hhmm_utc(view.started_at)
    if view.elapsed is not None:
        value += f" · {'took' if view.finished else 'for'} {duration_text(view.elapsed)}"
    return [Field("Started", value)]


def _buttons(view: RunView) -> tuple[Button, ...]:
    buttons = []
    if view.can_cancel:
        ask = Confirm("Cancel this run?", "Running steps are stopped.", "Cancel run", "Keep running")
        buttons.append(Button("Cancel", action_id("run", view.run_id, "cancel"), "danger", ask))
    if view.can_retry:
        buttons.append(Button("Retry failed step", action_id("run", view.run_id, "retry"), "primary"))
    for name in view.rewind_targets:
        ask = Confirm(
            f"Rewind to {name}?",
            f"The steps after {name} are undone, newest first, and the run goes on from there.",
            "Rewind",
            "Keep",
        )
        buttons.append(
            Button(f"Rewind to {name}", action_id("run", view.run_id, f"rewind.{name}"), "default", ask)
        )
    if view.can_rollback:
        ask = Confirm("Roll back this run?", "Completed steps are undone, newest first.", "Roll back", "Keep")
        buttons.append(Button("Rollback", action_id("run", view.run_id, "rollback"), "danger", ask))
    return tuple(buttons)


def run_card(view: RunView, link: str | None = None) -> Card:
    """The status card of a run: outcome, who started it, inputs, step lines and the buttons that apply;
    ``link`` (its dashboard page, when the public address is set) goes in the small print."""
    fields = [Field("Started by", view.started_by), Field("Status", view.status), *_timing(view)]
    fields += [Field(name, _short(value, INPUT_MAX) or "—") for name, value in view.inputs.items()]
    return Card(
        title=f"{view.workflow} · run {view.run_id[:6]}",
        text=_outcome(view),
        status=f"queued: {view.queued}" if view.status == "pending" and view.queued else view.status,
        colour=RUN_COLOURS[view.status],
        fields=tuple(fields),
        steps=tuple(_step_line(s) for s in view.steps),
        context=(f"run {view.run_id}",)
        + ((f"rerun of run {view.rerun_of[0]} from step {view.rerun_of[1]}",) if view.rerun_of else ())
        + ((f"Dashboard: {link}",) if link else ()),
        buttons=_buttons(view),
    )
