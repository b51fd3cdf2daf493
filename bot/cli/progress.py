"""Live run progress for the terminal: one line per notable event, then the outcome and outputs."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from bot.runtime.events import RunEvent
from engine.durations import format_duration
from engine.interrupts import interruption_text

ICONS = {
    "step_started": "⏳",
    "step_succeeded": "✓",
    "step_failed": "✗",
    "step_skipped": "⏭",
    "step_retrying": "↻",
    "step_cancelled": "⊘",
    "step_waiting": "⏸",
    "approval_requested": "✋",
    "approval_decided": "✋",
    "notification": "📣",
    "step_interrupted": "⚡",
    "compensation_step_started": "↩",
    "compensation_succeeded": "↩",
    "compensation_failed": "✗",
    "run_resumed": "▶",
    "rewind_requested": "↺",
    "run_rewound": "↺",
    "checkpoint_saved": "⚑",
    "step_reused": "♻",
    "run_cancel_requested": "⊘",
}
RUN_LINES = ("run_resumed", "run_cancel_requested", "rewind_requested", "run_rewound")
COLOURS = {
    "✓": "32",
    "✗": "31",
    "⏭": "90",
    "↻": "33",
    "⊘": "33",
    "⏸": "36",
    "✋": "35",
    "📣": "34",
    "↺": "33",
}


class Progress:
    """Prints a run's events as they happen."""

    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self.width = 14

    def header(self, workflow: str, run_id: str, inputs: dict[str, Any]) -> None:
        """The line that opens a run."""
        shown = ", ".join(f"{k}={v}" for k, v in inputs.items() if v is not None)
        self._print(f"▶ {workflow}  run {run_id}" + (f"  ({shown})" if shown else ""))

    def event(self, ev: RunEvent) -> None:
        """One event, if it is worth a line."""
        icon = ICONS.get(ev.type)
        if ev.type == "run_finished":
            self._finished(ev.data)
            return
        if icon is None or (ev.step_key is None and ev.type not in RUN_LINES):
            return
        if ev.type == "step_started" and "[" in (ev.step_key or ""):
            return  # fan-out items report when they finish
        key = (ev.step_key or "run").ljust(self.width)
        detail = self._detail(ev).replace("\n", "\n" + " " * (self.width + 5))
        self._print(f"  {self._paint(icon)} {key} {detail}".rstrip())

    def _detail(self, ev: RunEvent) -> str:
        d = ev.data
        match ev.type:
            case "step_started":
                kind = f"{d.get('kind')}, background" if d.get("background") else d.get("kind")
                return f"started ({kind})" + (f", attempt {d['attempt']}" if d.get("attempt", 1) > 1 else "")
            case "step_succeeded":
                return format_duration(d.get("duration", 0))
            case "step_failed":
                tail = f"\n{' ' * (self.width + 5)}stderr: {_last(d['stderr'])}" if d.get("stderr") else ""
                behind = " in the background; the run goes on" if d.get("background") else ""
                return f"{d.get('error')} ({format_duration(d.get('duration', 0))}){behind}" + tail
            case "step_retrying":
                delay = format_duration(d["delay"])
                return f"attempt {d.get('attempt')} failed: {d.get('error')}; retrying in {delay}"
            case "step_skipped":
                return f"skipped: {d.get('reason')}"
            case "step_waiting":
                return "waiting"
            case "approval_requested" if d.get("auto"):
                return f"approval asked: {d.get('title')}"
            case "approval_requested":
                return f"waiting for approval: {d.get('title')} (see `switchboard approvals list`)"
            case "approval_decided":
                return f"approval {d.get('outcome')}" + (f": {d['reason']}" if d.get("reason") else "")
            case "notification":
                return str(d.get("text"))
            case "step_interrupted":
                return interruption_text(d)
            case "step_waiting":
                return str(d.get("text"))
            case "step_progress":
                return "output: " + _last(str(d.get("text", "")))
            case "run_resumed":
                return "resumed"
            case "rewind_requested":
                return f"rewind to {d.get('to')} asked by {d.get('by')}"
            case "run_rewound":
                undone = ", ".join(d.get("undone") or []) or "nothing"
                return f"rewound to {d.get('to')}: undid {undone}; going on from there"
            case "checkpoint_saved":
                return f"checkpoint {d.get('name')} saved"
            case "step_reused":
                return f"reused from run {d.get('run')}"
        return ev.type.replace("_", " ")

    def _finished(self, data: dict[str, Any]) -> None:
        status = data.get("status", "?")
        icon = {"succeeded": "✓", "compensated": "↺", "cancelled": "⊘"}.get(status, "✗")
        self._print(f"{self._paint(icon)} run {status}" + (f": {data['error']}" if data.get("error") else ""))
        if data.get("outputs"):
            self._print(
                "  outputs: " + json.dumps(data["outputs"], indent=2, default=str).replace("\n", "\n  ")
            )

    def _paint(self, icon: str) -> str:
        code = COLOURS.get(icon)
        return f"\x1b[{code}m{icon}\x1b[0m" if self.colour and code else icon

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _last(text: str) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    return lines[-1] if lines else ""
