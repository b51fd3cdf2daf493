"""An llm step's message in its run's thread: posted once under the status card, edited as the text grows.

The message is a card row of its own (``llm:<run>:<step>:<attempt>``, in the thread of ``run:<run>``), so
the outbox posts it once and then edits it in place, the newest version winning. The text so far comes
many times a second; the row is written at most once per ``THREAD_EVERY`` while it comes, and once more,
in the commit that stores the step's end, with the whole text. The run's status card only says that
the step is writing (drawn once when the text starts, not per piece).

After a crash the step is run again as a new attempt: the commit that records the interruption notes it
on the message and moves the row to the new attempt's key, so the new attempt edits the same message
rather than posting another. A message whose first post may have been under way when the process died
keeps its key, so the outbox can find it on the platform by that key instead of posting it twice; the
new attempt then writes a message of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql import Executable

from bot.storage.cards import card_note, card_rekey, card_row
from bot.storage.journal import Batch
from cards.limits import ELLIPSIS, clip
from cards.model import Card
from engine.activities.base import StepCall
from engine.durations import format_duration
from engine.interrupts import interruption_text
from engine.masking import mask
from engine.state import RunState, StepStatus

THREAD_EVERY = 1.0  # least seconds between two stored versions of an llm step's message while it writes
THREAD_TEXT = 2900  # characters of the text a message shows (a Slack section holds 3,000)
WRITING = " …"  # after the text while the model is still writing
ENDS = ("step_succeeded", "step_failed", "step_retrying", "step_cancelled", "step_skipped")


def thread_key(run_id: str, step_key: str, attempt: int) -> str:
    """The card key of one attempt's message: a resumed attempt's is never posted twice."""
    return f"llm:{run_id}:{step_key}:{attempt}"


@dataclass
class Writing:
    """An llm step attempt of a chat-started run, as this process streams it."""

    run_id: str
    step: str  # the step key
    attempt: int
    platform: str
    channel: str
    secrets: tuple[str, ...]
    text: str = ""  # the text so far
    written: float = float("-inf")  # time.monotonic() of the last version stored
    dirty: bool = False  # text came since that version

    @property
    def key(self) -> str:
        return thread_key(self.run_id, self.step, self.attempt)

    @property
    def stored(self) -> bool:
        """A version of the message is in the outbox (so its end must be written too)."""
        return self.written > float("-inf")

    def row(self, card: Card, now: float) -> dict[str, Any]:
        """The card row of this message, in the thread of its run's status card."""
        return card_row(self.key, self.platform, self.channel, card, now, parent_key=f"run:{self.run_id}")

    def masked(self, text: str | None = None) -> str:
        return str(mask(self.text if text is None else text, self.secrets))


class LlmThreads:
    """The llm steps of chat-started runs that this process drives, and the rows of their messages.

    ``observe`` is given each commit's events (in the commit: a step's start, its end with the whole
    text, a crash's note); ``due`` adds the versions whose text grew, at most one per ``THREAD_EVERY``
    each, to a write of the caller's (``StatusCards`` keeps the timer).
    """

    def __init__(self, upsert_card: Executable) -> None:
        self.upsert_card = upsert_card
        self.note_card = card_note()
        self.rekey_card = card_rekey()
        self._writing: dict[tuple[str, str], Writing] = {}  # (run id, step key) -> its attempt here

    def get(self, call: StepCall) -> Writing | None:
        """The attempt ``call`` is, if it is a chat run's llm step that started here."""
        writing = self._writing.get((call.run_id, call.step_key))
        if writing is None or call.compensation or writing.attempt != call.attempt:
            return None
        return writing

    def observe(self, batch: Batch, state: RunState, events: list[dict[str, Any]], now: float) -> None:
        """The llm steps that start, end or were interrupted in this commit: their thread messages."""
        for event in events:
            kind, key, data = event["type"], event.get("step_key"), event["data"]
            if not key or "[" in key or not _is_llm(state, key):
                continue  # fan-out items keep their text in their outputs only
            if kind == "step_started":
                self._writing[(state.run_id, key)] = _start(state, key, int(data.get("attempt") or 1))
            elif kind == "step_interrupted":
                self._interrupted(batch, state.run_id, key, data, now)
            elif kind in ENDS:
                attempt = data.get("attempt")
                writing = self._writing.get((state.run_id, key))
                if writing is not None and attempt in (None, writing.attempt):
                    del self._writing[(state.run_id, key)]
                elif kind == "step_succeeded" and attempt is not None:
                    writing = _start(state, key, int(attempt))  # started elsewhere: its whole text at once
                else:
                    continue
                card = ended_card(writing, event, state.steps[key].outputs)
                if card is not None:
                    batch.add(self.upsert_card, writing.row(card, now))

    def due(self, batch: Batch, clock: float, now: float, live: Callable[[str], bool]) -> list[Writing]:
        """Add the messages whose text grew and whose last version is ``THREAD_EVERY`` old (by the
        monotonic ``clock``) to ``batch``; those written (to mark dirty again if the write fails)."""
        writes = [w for w in self._writing.values() if w.dirty and w.written <= clock - THREAD_EVERY]
        written = []
        for writing in writes:
            writing.dirty = False
            if not live(writing.run_id):
                self._writing.pop((writing.run_id, writing.step), None)  # the run went elsewhere
                continue
            batch.add(self.upsert_card, writing.row(writing_card(writing), now))
            writing.written = clock
            written.append(writing)
        return written

    def dirty(self) -> list[float]:
        """When each message with new text was last written (monotonic)."""
        return [w.written for w in self._writing.values() if w.dirty]

    def lines(self, state: RunState) -> list[str]:
        """The status card's lines for the run's llm steps that are writing."""
        return [
            f"✎ {key} is writing… see thread"
            for key, step in state.steps.items()
            if step.status == StepStatus.RUNNING
            and (writing := self._writing.get((state.run_id, key))) is not None
            and writing.text
        ]

    def _interrupted(self, batch: Batch, run_id: str, key: str, data: dict[str, Any], now: float) -> None:
        """A crash broke off an attempt: note it on its message, which the next attempt takes over."""
        self._writing.pop((run_id, key), None)
        attempt = int(data.get("attempt") or 0)
        old = thread_key(run_id, key, attempt)
        batch.add(self.note_card, {"_key": old, "_card": interrupted_card(key, data).to_dict(), "_at": now})
        if data.get("action", "rerun") in ("rerun", "ask"):
            batch.add(self.rekey_card, {"_key": old, "_new": thread_key(run_id, key, attempt + 1)})


def writing_card(writing: Writing) -> Card:
    """The message while the model writes: the text so far (its end, when it is long)."""
    text = writing.masked()
    if len(text) > THREAD_TEXT:
        text = ELLIPSIS + text[-(THREAD_TEXT - 1) :].lstrip()
    return Card(
        title="",
        text=text + WRITING,
        colour="info",
        context=(f"✎ {writing.step} is writing…",),
        fallback=f"{writing.step} is writing: {clip(text, 200)}",
    )


def ended_card(writing: Writing, event: dict[str, Any], outputs: Any) -> Card | None:
    """The message's last version, for the event that ended the attempt (None: nothing worth a message)."""
    kind, data, step = event["type"], event["data"], writing.step
    if kind == "step_succeeded":
        text = writing.text or _output_text(outputs)
        if not text:
            return None  # the step's outputs hold no text to show
        text = writing.masked(text)
        notes = [f"✎ {step}" + _usage(outputs) + _took(data)]
        if len(text) > THREAD_TEXT:
            notes.append(f"the whole text ({len(text):,} characters) is in the step's outputs")
        shown = clip(text, THREAD_TEXT)
        return Card(title="", text=shown, colour="neutral", context=tuple(notes), fallback=shown)
    if not writing.stored and not writing.text:
        return None  # nothing was shown: the thread's failure reply says it all
    error = clip(str(data.get("error") or data.get("reason") or ""), 300)
    if kind == "step_retrying":
        note = f"↻ {step}: attempt {data.get('attempt')} failed ({error}); the next attempt writes anew"
    elif kind == "step_cancelled":
        note = f"✗ {step} was cancelled"
    elif kind == "step_skipped":
        note = f"{step} was skipped: {error}"
    else:
        note = f"✗ {step} failed: {error}"
    text = clip(writing.masked(), THREAD_TEXT) if writing.text else "(no text came)"
    return Card(title="", text=text, colour="warning", context=(note,), fallback=f"{note}\n{text}")


def interrupted_card(step: str, data: dict[str, Any]) -> Card:
    """The note left on the message of an attempt a crash broke off."""
    text = f"⚡ {step} {interruption_text(data)}"
    return Card(title="", text=text, colour="warning", context=(f"✎ {step}",), fallback=text)


def _output_text(outputs: Any) -> str:
    text = outputs.get("text") if isinstance(outputs, dict) else None
    return text if isinstance(text, str) else ""


def _usage(outputs: Any) -> str:
    usage = outputs.get("usage") if isinstance(outputs, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return f" · {tokens:,} tokens" if isinstance(tokens, int) else ""


def _took(data: dict[str, Any]) -> str:
    duration = data.get("duration")
    return f" · {format_duration(float(duration))}" if isinstance(duration, int | float) else ""


def _start(state: RunState, key: str, attempt: int) -> Writing:
    origin = state.meta["origin"]
    secrets = tuple(state.secrets.values())
    return Writing(state.run_id, key, attempt, origin["platform"], origin["channel"], secrets)


def _is_llm(state: RunState, key: str) -> bool:
    step = state.steps.get(key)
    spec = state.workflow.steps.get(step.step_id) if step is not None else None
    return spec is not None and spec.kind == "llm"
