"""One run as its dashboard page shows it: the stored run, its steps, events and approvals, and its DAG."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from bot.dashboard.dag import nodes_from, render_svg
from bot.dashboard.queries import ApprovalLine, card_message, run_approvals, who_started
from bot.runtime.costs import Prices, usage_line
from bot.storage.run_rows import EventRow, RunRow
from bot.storage.runs import RunStore
from engine.checkpoints import is_undone
from engine.loader import parse_stored
from engine.state import RunStatus, StepState
from engine.usage import is_llm_step, run_usage

EVENTS_SHOWN = 500


@dataclass(frozen=True)
class RunPage:
    run: RunRow
    steps: list[StepState]  # top-level steps (a fan-out's items are counted on its node)
    events: list[EventRow]
    approvals: list[ApprovalLine]
    dag: Markup
    nodes: dict[str, dict[str, str]]  # step id -> {"status", "label", "items"}, for the live updates
    stderr: dict[str, str]  # failed step key -> the end of its stderr
    card_ref: str | None = None  # the status card's message on its platform, once posted
    llm: str | None = None  # the tokens and cost of its llm steps (None: the workflow has none)

    @property
    def started_by(self) -> str:
        return who_started(self.run.meta, self.run.started_by)

    @property
    def origin(self) -> tuple[str, str | None] | None:
        """Where the run was started, as text, and a link when it is the console's channel."""
        place = self.run.meta.get("origin")
        if not isinstance(place, dict) or not place.get("channel"):
            return None
        platform, channel = str(place.get("platform", "")), str(place["channel"])
        name = str(place.get("channel_name") or channel)
        if platform == "console" and not channel.startswith("@"):
            return f"#{channel} in the console", f"/#{channel}"
        return f"{name} on {platform}", thread_link(platform, self.card_ref, self.run.meta)

    @staticmethod
    def undone(step: StepState) -> bool:
        """Whether the step's line shows ↺ undone (rolled back, or rewound and not run again yet)."""
        return is_undone(step)

    @property
    def finished(self) -> bool:
        return RunStatus(self.run.status).finished


async def load_run(store: RunStore, run_ref: str, prices: Prices | None = None) -> RunPage | None:
    """The page's content for a run id (or a unique prefix of one); None when there is no such run."""
    row = await store.run_row(run_ref)
    if row is None:
        return None
    states = await store.step_rows(row.id)
    source, path = await store.source_of(row.digest)
    workflow = parse_stored(source, path)
    nodes = nodes_from([(s.step_id, s.index, str(s.status), _total(s)) for s in states])
    rank = {step_id: i for i, step_id in enumerate(workflow.steps)}
    tops = sorted(
        (s for s in states if s.index is None), key=lambda s: (rank.get(s.step_id, len(rank)), s.key)
    )
    events = await store.events_after(
        row.id, max(row.event_seq - EVENTS_SHOWN, 0), EVENTS_SHOWN
    )  # the latest
    return RunPage(
        run=row,
        steps=tops,
        events=events,
        approvals=await run_approvals(store.engine, row.id),
        dag=render_svg(workflow.steps, nodes, f"Steps of {row.workflow}, run {row.id}"),
        nodes={
            step_id: {"status": node.status, "label": node.label, "items": node.count}
            for step_id, node in nodes.items()
        },
        stderr=stderr_tails(events),
        card_ref=await card_message(store.engine, row.id),
        llm=(
            usage_line(run_usage(workflow, states), prices or Prices())
            if any(is_llm_step(workflow, sid) for sid in workflow.steps)
            else None
        ),
    )


def thread_link(platform: str, card_ref: str | None, meta: dict[str, Any]) -> str | None:
    """A web link to the status card's thread: Slack's permalink form, Discord's message link (its
    guild from the starter's identity); None before the card is posted."""
    if not card_ref or ":" not in card_ref:
        return None
    channel, _, message = card_ref.partition(":")
    if platform == "slack":
        return f"https://slack.com/archives/{quote(channel)}/p{quote(message.replace('.', ''))}"
    who = meta.get("who")
    guild = who.get("workspace") if isinstance(who, dict) else None
    if platform == "discord" and guild:
        return f"https://discord.com/channels/{quote(str(guild))}/{quote(channel)}/{quote(message)}"
    return None


def _total(step: StepState) -> int | None:
    return len(step.items) if step.items is not None else None


def stderr_tails(events: list[EventRow], lines: int = 20) -> dict[str, str]:
    """The end of each failed step's stderr (its latest failure's), where the reason usually is."""
    tails: dict[str, str] = {}
    for event in events:
        text = event.data.get("stderr") if isinstance(event.data, dict) else None
        if event.type == "step_failed" and event.step_key and isinstance(text, str) and text.strip():
            tails[event.step_key] = "\n".join(text.rstrip().splitlines()[-lines:])
    return tails


def event_summary(event: EventRow) -> str:
    """A short line for the timeline: the error or reason an event carries, if any."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    for name in ("error", "reason", "decision", "status", "by"):
        value = data.get(name)
        if isinstance(value, str | int | float) and str(value):
            text = str(value)
            return f"{name}: {text[:200]}{'…' if len(text) > 200 else ''}"
    return ""
