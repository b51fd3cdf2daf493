"""Runs the assistant started: when one fails, the conversation goes to a person (a configured rule)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.storage.conversations.states import AI_SPEAKS
from bot.storage.journal import Batch
from engine.state import RunState

if TYPE_CHECKING:
    from bot.conversations.service import Conversations

log = logging.getLogger(__name__)


def watch_runs(service: Conversations) -> None:
    """Add a runtime observer that hands a conversation over when a run it started fails (where the
    conversation's hand-over rules say so)."""

    def observe(batch: Batch, state: RunState, rows: list[dict[str, Any]], now: float) -> None:
        conv_id = state.meta.get("conversation")
        if not conv_id:
            return
        for row in rows:
            if row.get("type") == "run_finished" and (row.get("data") or {}).get("status") == "failed":
                error = (row.get("data") or {}).get("error") or "no error recorded"
                service.spawn(_failed(service, str(conv_id), state, str(error)))

    service.runtime.observers.append(observe)


async def _failed(service: Conversations, conv_id: str, state: RunState, error: str) -> None:
    conv = await service.store.get(conv_id)
    if conv is None or conv.state not in AI_SPEAKS:
        return  # a person has it already, or it has ended
    if not service.rules(conv).on_workflow_failure:
        return
    summary = f"The workflow {state.workflow.name} (run {state.run_id}) failed: {error}"
    await service.hand_over(
        conv,
        "workflow_failed",
        "switchboard",
        summary=summary,
        tried=f"ran {state.workflow.name}",
        preface=f"The run of {state.workflow.name} failed.",
    )
