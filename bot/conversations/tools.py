"""The assistant's tools as typed models: the model's arguments are validated, never pattern-matched.

``handover_to_human`` and ``finish`` end a turn with a decision; the others return text to the model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

APPROVER = re.compile(r"(user|group):[A-Za-z0-9._@-]{1,80}")


class ListWorkflows(BaseModel):
    """List the workflows this user may run, with their inputs."""


class RunWorkflow(BaseModel):
    """Start a workflow for the user (their permissions and any approval gates apply)."""

    name: str = Field(description="The workflow's name, as list_workflows gives it.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Inputs by name, as text.")


class RunStatus(BaseModel):
    """Get the status of a workflow run."""

    run_id: str = Field(description="The run's id, as run_workflow returned it.")


class Rewind(BaseModel):
    """Take a finished run back to a checkpoint: its later steps are undone (newest first) and the run goes
    on from there. It acts with the user's own permissions (those of a rollback)."""

    run_id: str = Field(description="The run's id.")
    to: str = Field(max_length=200, description="A checkpoint's name, or a step that succeeded.")


class Remember(BaseModel):
    """Remember a fact about this conversation (for example the service it is about)."""

    key: str = Field(max_length=80, description="A short name, e.g. 'service'.")
    value: str = Field(max_length=500)


class HandoverToHuman(BaseModel):
    """Hand the conversation to a human agent. Use it when the user asks for a person, or you cannot help."""

    reason: Literal[
        "user_request",
        "cannot_help",
        "needs_permission",
        "sensitive",
        "complaint",
        "workflow_failed",
        "other",
    ] = Field(description="Why a person should take over.")
    summary: str = Field(max_length=2000, description="What the user wants and what happened so far.")
    skills: list[str] = Field(default_factory=list, description="Skills the agent needs, e.g. ['billing'].")
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    tried: str = Field(default="", max_length=1000, description="What you already tried.")
    suggested_reply: str = Field(
        default="", max_length=1000, description="A first reply the agent could send."
    )
    confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="How sure you are, from 0 to 1, that you could still resolve it yourself.",
    )


class RequestApproval(BaseModel):
    """Ask people for an approval in chat, under the approval rules (approvers, how many must agree, no
    self-approval). It returns at once; the decision arrives later in this conversation."""

    subject: str = Field(min_length=1, max_length=150, description="What is to be approved, in a line.")
    summary: str = Field(max_length=2000, description="What the approvers need to know to decide.")
    approvers: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Who may approve: 'user:alice' or 'group:release-managers'.",
    )
    required: int = Field(default=1, ge=1, le=20, description="How many approvals it needs.")
    timeout_minutes: int | None = Field(
        default=None, ge=1, le=10_080, description="Expire (rejected) after this many minutes."
    )
    auto_approve_after_minutes: int | None = Field(
        default=None, ge=1, le=10_080, description="Approve after this many minutes unless someone objects."
    )

    @field_validator("approvers")
    @classmethod
    def _approver_refs(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not APPROVER.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is not an approver; write 'user:NAME' or 'group:NAME' "
                    "(letters, digits, . _ - @)"
                )
        return entries

    @model_validator(mode="after")
    def _fits(self) -> RequestApproval:
        if self.required > len(self.approvers) and all(a.startswith("user:") for a in self.approvers):
            named = len(self.approvers)
            raise ValueError(f"{self.required} approvals needed but only {named} approvers named")
        after, limit = self.auto_approve_after_minutes, self.timeout_minutes
        if after is not None and limit is not None and after >= limit:
            raise ValueError("auto_approve_after_minutes must be shorter than timeout_minutes")
        return self


class Finish(BaseModel):
    """End the conversation: the user's request is resolved."""

    resolution: str = Field(max_length=1000, description="How it was resolved, in one sentence.")


TOOLS: dict[str, type[BaseModel]] = {
    "list_workflows": ListWorkflows,
    "run_workflow": RunWorkflow,
    "run_status": RunStatus,
    "rewind": Rewind,
    "remember": Remember,
    "request_approval": RequestApproval,
    "handover_to_human": HandoverToHuman,
    "finish": Finish,
}


# Keywords the grammar builders of self-hosted servers (llama.cpp, vLLM's guided decoding, Ollama)
# reject or crash on. The limits still hold: the arguments are validated against the models after parsing.
UNSENT_KEYWORDS = frozenset({"maxLength", "minLength", "pattern", "format", "title", "examples"})


def portable_schema(node: Any) -> Any:
    """``node`` without the keywords in ``UNSENT_KEYWORDS`` (property names are kept, whatever they are)."""
    if isinstance(node, list):
        return [portable_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: portable_schema(sub) for name, sub in value.items()}
        elif key not in UNSENT_KEYWORDS:
            out[key] = portable_schema(value)
    return out


def tool_specs() -> list[dict[str, Any]]:
    """The ``tools`` parameter of a chat completion: plain JSON Schema that self-hosted servers accept."""
    specs = []
    for name, model in TOOLS.items():
        schema = portable_schema(model.model_json_schema())
        specs.append(
            {
                "type": "function",
                "function": {"name": name, "description": model.__doc__ or name, "parameters": schema},
            }
        )
    return specs
