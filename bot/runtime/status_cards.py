"""A run's chat presence: its status card and thread replies, written to the outbox in the run's own commits.

The card row holds only the newest rendering (its version goes up on every change), so however fast a
run moves, the outbox sends the latest state and never a backlog of edits. Rendering the card costs
time in the number of steps, so it is not redone on every commit: a commit marks the run's card dirty,
and the card is rendered from the live state at most once per card interval (the outbox edits a card no
more often than that anyway), in the commit that is being made then or, when the run goes quiet, in a
write of its own once the interval is up. A run's first commit in this process, a change of its status
(waiting, finished...) and a commit with a thread reply render it at once, so the card is never behind
a reply in its thread, and a card a killed process left behind is brought up to date by the first
commit of the process that resumes the run.

An llm step writes into the run's thread: a message of its own, written at most once a second while the
text comes and once more with the whole text (``bot.runtime.llm_threads``); the card itself only says
"✎ step is writing… see thread".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.sql import Executable

from bot.runtime.dag_posts import dag_card, dashboard_link
from bot.runtime.llm_threads import THREAD_EVERY, LlmThreads
from bot.runtime.run_views import view_from_state
from bot.storage.cards import card_row, post_insert, post_row
from bot.storage.journal import Batch, Journal
from cards.limits import clip
from cards.model import Card
from cards.run_card import run_card
from engine.activities.base import StepCall
from engine.durations import format_duration
from engine.interrupts import interruption_text
from engine.state import RunState, RunStatus

log = logging.getLogger(__name__)


@dataclass
class _Shown:
    """What this process last wrote of one run's card, and whether the run has moved on since."""

    status: RunStatus
    written: float  # time.monotonic() of that write
    state: RunState
    dirty: bool = False


class StatusCards:
    """A runtime observer that keeps each chat-started run's status card and thread in the outbox.

    ``interval`` is the least time between two renderings of one run's card (0 renders on every
    commit); ``live`` says whether this process still drives a run (a run it let go is not drawn here).
    """

    def __init__(
        self,
        journal: Journal,
        upsert_card: Executable,
        clock: Callable[[], float],
        interval: float = 1.0,
        live: Callable[[str], bool] = lambda run_id: True,
        public_url: str | None = None,
    ) -> None:
        self.public_url = public_url  # the status card links to the run's dashboard page when set
        self.journal = journal
        self.clock = clock
        self.upsert_card = upsert_card
        self.insert_post = post_insert()
        self.interval = interval
        self.live = live
        self._shown: dict[str, _Shown] = {}  # running runs whose card this process has written
        self._flusher: asyncio.Task[None] | None = None
        self._due = asyncio.Event()
        self._closed = False  # after close(), every commit draws its card
        self.threads = LlmThreads(upsert_card)  # the llm steps' messages in their runs' threads

    def __call__(self, batch: Batch, state: RunState, events: list[dict[str, Any]], now: float) -> None:
        origin = state.meta.get("origin")
        if not origin or not events or state.meta.get("parent_run_id"):
            return  # CLI runs have no chat origin; sub-workflows report through their parent's steps
        platform, channel = origin["platform"], origin["channel"]
        key = f"run:{state.run_id}"
        self.threads.observe(batch, state, events, now)
        replies = [(event, reply) for event in events if (reply := thread_reply(event)) is not None]
        shown = self._shown.get(state.run_id)
        if (
            shown is None
            or replies
            or shown.status != state.status
            or self._closed
            or time.monotonic() - shown.written >= self.interval
        ):
            batch.add(self.upsert_card, self._render(state, now, platform, channel))
        else:
            shown.dirty, shown.state = True, state  # drawn when the interval is up, as the state is then
            self._wake()
        parent: str | None
        for event, reply in replies:
            target_channel, parent = channel, key
            if event["type"] == "notification" and event["data"].get("channel"):
                target_channel, parent = str(event["data"]["channel"]), None  # notify to another channel
            batch.add(self.insert_post, post_row(platform, target_channel, parent, reply, now))
        if any(event["type"] == "run_finished" for event in events):
            # The picture of how it ended, under the card, after the final outputs.
            picture = dag_card(
                state.run_id,
                state.workflow.name,
                str(state.status),
                state.workflow.steps,
                list(state.steps.values()),
                dashboard_link(self.public_url, state.run_id),
            )
            batch.add(self.insert_post, post_row(platform, channel, key, picture, now))

    def progress(self, call: StepCall, text: str) -> None:
        """An llm step's text so far (``ActivityContext.on_text``): its message in the run's thread is
        written at most once per ``THREAD_EVERY``, however often this is called; the run's card is
        drawn once more, when the text starts, to say that the step is writing."""
        writing = self.threads.get(call)
        if writing is None:
            return  # not a chat run's llm step that started here
        starts = not writing.text
        writing.text = text
        if starts and (shown := self._shown.get(call.run_id)) is not None:
            shown.dirty = True
        if not writing.dirty:
            writing.dirty = True
            if not self._closed:
                self._wake()

    async def flush(self, all_dirty: bool = True) -> None:
        """Write the dirty cards whose interval is up (``all_dirty``: every dirty card) in one commit,
        and the llm messages whose text grew, each at most once per ``THREAD_EVERY``."""
        clock = time.monotonic()
        ready = clock - self.interval
        due = [(i, s) for i, s in self._shown.items() if s.dirty and (all_dirty or s.written <= ready)]
        batch = Batch()
        writes = self.threads.due(batch, clock, self.clock(), self.live)
        for run_id, shown in due:
            shown.dirty = False
            if not self.live(run_id):
                self._shown.pop(run_id, None)
                continue
            origin = shown.state.meta["origin"]
            batch.add(
                self.upsert_card,
                self._render(shown.state, self.clock(), origin["platform"], origin["channel"]),
            )
        try:
            await self.journal.write(batch)
        except Exception:
            for _, shown in due:
                shown.dirty = True  # drawn at the next try, or by the run's next commit
            for writing in writes:
                writing.dirty = True
            raise

    async def close(self) -> None:
        """Write the dirty cards and stop the timer that draws them; later commits draw their cards."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self.flush()
        self._shown.clear()

    def _render(
        self,
        state: RunState,
        now: float,
        platform: str,
        channel: str,
    ) -> dict[str, Any]:
        card = run_card(view_from_state(state, now), dashboard_link(self.public_url, state.run_id))
        writing = self.threads.lines(state)
        if writing:
            card = replace(card, context=(*card.context, *writing))
        row = card_row(f"run:{state.run_id}", platform, channel, card, now)
        if state.status in (RunStatus.RUNNING, RunStatus.COMPENSATING) and self.interval > 0:
            self._shown[state.run_id] = _Shown(state.status, time.monotonic(), state)
        else:
            self._shown.pop(state.run_id, None)  # waiting or finished: the next commit draws it again
        return row

    def _wake(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="status-cards")
        self._due.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            dirty = [s.written + self.interval for s in self._shown.values() if s.dirty]
            dirty += [written + THREAD_EVERY for written in self.threads.dirty()]
            if not dirty:
                continue
            await asyncio.sleep(max(min(dirty) - time.monotonic(), 0.0))
            try:
                await self.flush(all_dirty=False)
            except Exception:
                log.exception("status cards: writing a run's card failed; trying again")
                await asyncio.sleep(max(self.interval, 1.0))
            if any(s.dirty for s in self._shown.values()) or self.threads.dirty():
                self._due.set()


def thread_reply(event: dict[str, Any]) -> Card | None:
    """The thread message a notable event deserves, or None."""
    kind, key, data = event["type"], event.get("step_key"), event["data"]
    if kind == "step_failed" and "[" not in (key or ""):
        tail = _tail(data.get("stderr", ""))
        behind = " in the background (the run goes on)" if data.get("background") else ""
        text = f"✗ *{key}* failed{behind}: {clip(str(data.get('error', '')), 500)}"
        return Card(
            title=f"{key} failed",
            text=text + (f"\n```{tail}```" if tail else ""),
            colour="warning" if behind else "danger",
            fallback=text,
        )
    if kind == "step_retrying":
        delay = format_duration(float(data.get("delay", 0)))
        error = clip(str(data.get("error", "")), 300)
        text = f"↻ *{key}*: attempt {data.get('attempt')} failed ({error}); retrying in {delay}"
        return Card(title=f"{key} retrying", text=text, colour="warning", fallback=text)
    if kind == "step_waiting":
        text = f"⏳ *{key}* is {data.get('text')}"
        return Card(title=f"{key} waiting", text=text, colour="warning", fallback=text)
    if kind == "step_progress":
        text = f"… *{key}* on its runner:\n```{clip(str(data.get('text', '')), 1200)}```"
        return Card(title=f"{key} output", text=text, colour="info", fallback=f"{key} output")
    if kind == "step_interrupted":
        text = f"⚡ *{key}* {interruption_text(data)}"
        colour = "danger" if data.get("action") in ("fail", "stuck") else "warning"
        return Card(title=f"{key} interrupted", text=text, colour=colour, fallback=text)  # type: ignore[arg-type]
    if kind == "notification":
        text = str(data.get("text", ""))
        return Card(title="Notification", text=text, colour="info", fallback=text)
    if kind == "approval_requested":
        text = f"⏸ *{key}* is waiting for approval: {data.get('title')}"
        return Card(title="Waiting for approval", text=text, colour="warning", fallback=text)
    if kind == "run_rewound":
        undone = ", ".join(data.get("undone") or []) or "nothing"
        text = f"↺ Rewound to *{data.get('to')}*: undid {undone}; the run goes on from there."
        return Card(title=f"Rewound to {data.get('to')}", text=text, colour="info", fallback=text)
    if kind == "rewind_refused":
        text = f"↺ The rewind to {data.get('to')} was refused: {clip(str(data.get('reason', '')), 300)}"
        return Card(title="Rewind refused", text=text, colour="warning", fallback=text)
    if kind == "run_finished":
        status = data.get("status")
        if data.get("error"):
            text = f"Run {status}: {clip(str(data['error']), 500)}"
        else:
            outputs = json.dumps(data.get("outputs") or {}, indent=1, default=str)
            text = f"Run {status}. Outputs:\n```{clip(outputs, 1500)}```"
        colour = "success" if status in ("succeeded", "compensated") else "danger"
        return Card(title=f"Run {status}", text=text, colour=colour, fallback=f"Run {status}")  # type: ignore[arg-type]
    return None


def _tail(stderr: Any, lines: int = 8) -> str:
    kept = [ln for ln in str(stderr or "").splitlines() if ln.strip()][-lines:]
    return clip("\n".join(kept), 1200)
