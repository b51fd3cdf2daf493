"""Hand-over rules per channel and per workflow: the file's typed model, and the rules for one conversation.

A layer names only what it changes. For a conversation the most specific layer wins, field by field: the
workflow the assistant last ran in it, then its channel, then the file's ``defaults``, then the environment
(``SWITCHBOARD_HANDOVER_*``). Routes add up, most specific first. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.config import PLATFORMS, Settings
from bot.storage.conversations.rows import PRIORITIES, Conversation

Reason = Literal[
    "user_request",
    "cannot_help",
    "needs_permission",
    "sensitive",
    "complaint",
    "workflow_failed",
    "repeated_failures",
    "keyword",
    "other",
]
Priority = Literal["low", "normal", "high", "urgent"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(Strict):
    """When a conversation goes to a person (unset: the next layer decides)."""

    keywords: list[str] | None = Field(default=None, max_length=100)
    # The assistant reports, with handover_to_human, how sure it is it could still resolve the request
    # (0-1); it hands over only below this. Unset: every hand-over it asks for happens.
    confidence_below: float | None = Field(default=None, ge=0.0, le=1.0)
    # The user asking for a person (the button, /human, or the assistant's reason user_request) hands over
    # at once; off, the button and /human are refused and the assistant's hand-over needs low confidence.
    explicit_request: bool | None = None
    after_failures: int | None = Field(default=None, ge=1, le=100)
    on_workflow_failure: bool | None = None


class Route(Strict):
    """Skills and priority for a hand-over whose words or reason match (neither given: every hand-over)."""

    keywords: list[str] = Field(default=[], max_length=100)
    reasons: list[Reason] = Field(default=[], max_length=20)
    skills: list[str] = Field(default=[], max_length=20)
    priority: Priority | None = None


class Scope(Strict):
    triggers: Triggers = Triggers()
    routes: list[Route] = Field(default=[], max_length=50)


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


def rules_for(settings: Settings, file: HandoverFile, conv: Conversation) -> Rules:
    """The rules for ``conv``: the workflow's layer, the channel's, the file's defaults, the environment."""
    layers: list[tuple[str, Scope]] = []
    if conv.workflow and conv.workflow in file.workflows:
        layers.append((f"workflow {conv.workflow}", file.workflows[conv.workflow]))
    for key in channel_keys(conv):
        if key in file.channels:
            layers.append((f"channel {key}", file.channels[key]))
            break
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
