"""The ``handover:`` section of a workflow, and the same scopes the hand-over file uses: when a conversation
about the workflow goes to a person (triggers), and the skills and priority it asks for (routes).

Every field left out is decided by the next layer down (the hand-over file, then the environment); the
bot applies them (``bot/conversations/handover_rules.py``). Models only: no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
# A channel as the hand-over rules name it: slack:C0123, discord:123, console:ops, or a bare Slack/Discord id.
CHANNEL_KEY = re.compile(r"^((slack|discord|console):)?#?[^\s:#]+$")
MAX_CHANNELS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class HandoverTriggers(_Strict):
    """When a conversation goes to a person (unset: the next layer decides)."""

    keywords: list[str] | None = Field(
        default=None, max_length=100, description="Words in the user's message that hand over at once."
    )
    # The assistant reports, with handover_to_human, how sure it is it could still resolve the request
    # (0-1); it hands over only below this. Unset: every hand-over it asks for happens.
    confidence_below: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The assistant's own hand-over happens only when its reported confidence is below this.",
    )
    # The user asking for a person (the button, /human, or the assistant's reason user_request) hands over
    # at once; off, the button and /human are refused and the assistant's hand-over needs low confidence.
    explicit_request: bool | None = Field(
        default=None, description="Whether the user asking for a person (button, /human) hands over at once."
    )
    after_failures: int | None = Field(
        default=None, ge=1, le=100, description="Hand over after this many failed assistant turns in a row."
    )
    on_workflow_failure: bool | None = Field(
        default=None, description="Hand over when a run the assistant started fails."
    )


class HandoverRoute(_Strict):
    """Skills and priority for a hand-over whose words or reason match (neither given: every hand-over)."""

    keywords: list[str] = Field(default=[], max_length=100)
    reasons: list[Reason] = Field(default=[], max_length=20)
    skills: list[str] = Field(default=[], max_length=20, description="Skills the agent needs.")
    priority: Priority | None = None


class HandoverScope(_Strict):
    """Triggers and routes for one place (the file's defaults, a channel, a workflow)."""

    triggers: HandoverTriggers = HandoverTriggers()
    routes: list[HandoverRoute] = Field(default=[], max_length=50)


class WorkflowHandover(HandoverScope):
    """``handover:`` in a workflow: its own triggers and routes, and ``channels`` for particular channels."""

    channels: dict[str, HandoverScope] = Field(
        default={},
        max_length=MAX_CHANNELS,
        description="Per channel (slack:C0123, discord:123, console:ops, a bare id), over the rest.",
    )

    @field_validator("channels")
    @classmethod
    def _channel_keys(cls, value: dict[str, HandoverScope]) -> dict[str, HandoverScope]:
        for key in value:
            if not CHANNEL_KEY.match(key):
                raise ValueError(
                    f"channel {key!r} is not slack:ID, discord:ID, console:NAME or a bare channel id"
                )
        return value
