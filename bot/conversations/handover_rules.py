"""Hand-over rules per channel and per workflow: the file's typed model, and the rules for one conversation.

A layer names only what it changes. For a conversation the most specific layer wins, field by field:

1. the workflow the conversation is about (the assistant ran it, or asked about or rewound one of its runs):
   its own ``handover:`` key, for this channel (``handover.channels``) then in general; then the file's
   ``workflows.NAME``;
2. the conversation's channel in the file (``channels``);
3. the file's ``defaults``;
4. the environment (``SWITCHBOARD_HANDOVER_*``).

Routes add up, most specific first. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.config import PLATFORMS, Settings
from bot.storage.conversations.rows import PRIORITIES, Conversation
from engine.handover_spec import HandoverRoute, HandoverScope, HandoverTriggers, WorkflowHandover

# The scopes are the workflow format's (``handover:`` in a workflow), so the file and the workflow agree.
Triggers = HandoverTriggers
Route = HandoverRoute
Scope = HandoverScope


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HandoverFile(Strict):
    """The whole file: ``defaults``, ``channels`` by channel (``slack:C0123``, ``C0123``, ``console:ops``),
    ``workflows`` by workflow name."""

    defaults: Scope = Scope()
    channels: dict[str, Scope] = Field(default={}, max_length=1000)
    workflows: dict[str, Scope] = Field(default={}, max_length=1000)


@dataclass(frozen=True)
class Rules:
    """The hand-over rules that hold for one conversation."""

    keywords: tuple[str, ...]
    confidence_below: float | None
    explicit_request: bool
    after_failures: int
    on_workflow_failure: bool
    routes: tuple[Route, ...]
    scopes: tuple[str, ...] = ()  # which layers applied, for the logs: ("workflow deploy", "channel C01")

    def keyword_in(self, text: str) -> str | None:
        """The first trigger keyword in ``text`` (case-insensitive), or None."""
        lowered = text.lower()
        return next((k for k in self.keywords if k.strip() and k.strip().lower() in lowered), None)

    def route(
        self, reason: str, text: str, skills: Sequence[str], priority: str | int
    ) -> tuple[list[str], str | int]:
        """The skills and priority of a hand-over, with every matching route's added."""
        lowered = text.lower()
        wanted = list(skills)
        best = priority
        for route in self.routes:
            by_word = any(k.strip() and k.strip().lower() in lowered for k in route.keywords)
            by_reason = reason in route.reasons
            if (route.keywords or route.reasons) and not (by_word or by_reason):
                continue
            wanted += [s for s in route.skills if s.lower() not in {w.lower() for w in wanted}]
            if route.priority is not None and _rank(route.priority) > _rank(best):
                best = route.priority
        return wanted, best


def _rank(priority: str | int) -> int:
    if isinstance(priority, int):
        return priority
    return PRIORITIES.index(priority) if priority in PRIORITIES else 1


def channel_keys(conv: Conversation) -> tuple[str, ...]:
    """The keys a channel entry may have for this conversation's channel, the platform's own first."""
    bare = conv.channel.lstrip("#")
    keys = [f"{conv.platform}:{conv.channel}", f"{conv.platform}:{bare}", f"{conv.platform}:#{bare}"]
    if conv.platform != "console":  # a bare id is a Slack or Discord channel id, never a console channel
        keys.append(conv.channel)
    return tuple(dict.fromkeys(keys))


def rules_for(
    settings: Settings, file: HandoverFile, conv: Conversation, declared: WorkflowHandover | None = None
) -> Rules:
    """The rules for ``conv``: its workflow's layers (``declared`` is the workflow's own ``handover:``), its
    channel's, the file's defaults, the environment."""
    layers: list[tuple[str, Scope]] = []
    keys = channel_keys(conv)
    if conv.workflow and declared is not None:
        key = next((k for k in keys if k in declared.channels), None)
        if key is not None:
            layers.append((f"workflow {conv.workflow} in {key}", declared.channels[key]))
        layers.append((f"workflow {conv.workflow}", declared))
    if conv.workflow and conv.workflow in file.workflows:
        layers.append((f"file's workflow {conv.workflow}", file.workflows[conv.workflow]))
    key = next((k for k in keys if k in file.channels), None)
    if key is not None:
        layers.append((f"channel {key}", file.channels[key]))
    layers.append(("defaults", file.defaults))

    def first(name: str) -> Any:
        return next((v for _, s in layers if (v := getattr(s.triggers, name)) is not None), None)

    keywords, below, explicit = first("keywords"), first("confidence_below"), first("explicit_request")
    failures, on_failure = first("after_failures"), first("on_workflow_failure")
    return Rules(
        keywords=tuple(keywords if keywords is not None else settings.handover_keywords),
        confidence_below=below if below is not None else settings.handover_confidence_below,
        explicit_request=explicit if explicit is not None else True,
        after_failures=failures if failures is not None else settings.handover_after_failures,
        on_workflow_failure=(on_failure if on_failure is not None else settings.handover_on_workflow_failure),
        routes=tuple(route for _, scope in layers for route in scope.routes),
        scopes=tuple(name for name, _ in layers),
    )


def unknown_platforms(file: HandoverFile) -> list[str]:
    """Channel keys whose ``platform:`` prefix names no platform (a typo such as ``slak:C01``)."""
    bad = []
    for key in file.channels:
        kind, sep, _ = key.partition(":")
        if sep and kind not in PLATFORMS:
            bad.append(key)
    return bad
