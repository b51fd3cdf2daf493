"""A run's chat presence: its status card and thread replies, written to the outbox in the run's own commit.

The card row holds only the newest rendering (its version goes up on every change), so however fast a
run moves, the outbox sends the latest state and never a backlog of edits.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime.run_views import view_from_state
from bot.storage.cards import card_row, card_upsert, post_insert, post_row
from bot.storage.journal import Batch
from cards.limits import clip
from cards.model import Card
from cards.run_card import run_card
from engine.durations import format_duration
from engine.interrupts import interruption_text
from engine.state import RunState


class StatusCards:
    """A runtime observer that keeps each chat-started run's status card and thread in the outbox."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.upsert_card = card_upsert(engine)
        self.insert_post = post_insert()

    def __call__(self, batch: Batch, state: RunState, events: list[dict[str, Any]], now: float) -> None:
        origin = state.meta.get("origin")
        if not origin or not events or state.meta.get("parent_run_id"):
            return  # CLI runs have no chat origin; sub-workflows report through their parent's steps
        platform, channel = origin["platform"], origin["channel"]
        key = f"run:{state.run_id}"
        card = run_card(view_from_state(state, now))
        batch.add(self.upsert_card, card_row(key, platform, channel, card, now))
        for event in events:
            reply = thread_reply(event)
            if reply is None:
                continue
            target_channel, parent = channel, key
            parent_key: str | None = parent
            if event["type"] == "notification" and event["data"].get("channel"):
                target_channel, parent_key = str(event["data"]["channel"]), None  # notify to another channel
            batch.add(self.insert_post, post_row(platform, target_channel, parent_key, reply, now))


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
