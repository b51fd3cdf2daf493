"""The API's request and response bodies: the typed models the handlers use and the OpenAPI document shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RUN_STATUSES = (
    "pending",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
    "compensating",
    "compensated",
)
RunStatusName = Literal[
    "pending", "running", "waiting", "succeeded", "failed", "cancelled", "compensating", "compensated"
]
InputValue = str | int | float | bool


class Body(BaseModel):
    """A request body: a misspelt field is refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    ok: bool
    platforms: list[str]
    runs_loaded: int = Field(description="Runs this process is driving now")


# -- workflows -----------------------------------------------------------------------------------------


class InputInfo(BaseModel):
    name: str
    type: str = Field(description="string, text, number, integer, boolean, enum, list or object")
    required: bool
    default: Any = None
    enum: list[Any] | None = None
    description: str | None = None


class Permissions(BaseModel):
    run: list[str] = Field(description="Who may start it (`user:`, `group:`, `channel:`); empty: everyone")
    cancel: list[str] | None = Field(description="Who may cancel a run besides its starter; null: as run")
    rollback: list[str] | None = Field(
        description="Who may roll back a run besides its starter; null: as run"
    )


class WorkflowInfo(BaseModel):
    name: str
    description: str | None
    inputs: list[InputInfo]
    permissions: Permissions
    may_run: bool = Field(description="Whether the caller may start it")
    allowed_to_run: str = Field(description="Who may start it, as chat says it")


class WorkflowList(BaseModel):
    workflows: list[WorkflowInfo]


class ValidateRequest(Body):
    source: str = Field(max_length=1024 * 1024, description="The workflow file's text (YAML or JSON)")
    filename: str = Field(
        default="workflow.yaml", max_length=200, description="The name the diagnostics give the file"
    )


class Diagnostic(BaseModel):
    line: int
    col: int
    message: str
    text: str = Field(description="As the CLI prints it: file:line:col: message")


class ValidateResult(BaseModel):
    valid: bool
    name: str | None = Field(description="The workflow's name, when valid")
    errors: list[Diagnostic]
    warnings: list[Diagnostic]


# -- runs ----------------------------------------------------------------------------------------------


class StartRun(Body):
    workflow: str = Field(min_length=1, max_length=200, description="The workflow's name")
    inputs: dict[str, InputValue] = Field(default_factory=dict, max_length=200)


class RunSummary(BaseModel):
    id: str
    workflow: str
    status: RunStatusName
    started_by: str
    inputs: dict[str, Any]
    created_at: float
    finished_at: float | None
    error: str | None


class RunPage(BaseModel):
    runs: list[RunSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end")


class StepInfo(BaseModel):
    key: str
    status: str
    attempt: int
    started_at: float | None
    finished_at: float | None
    error: str | None
    outputs: Any = None
    undone: bool = Field(
        default=False, description="Its work was undone (↺): rolled back, or rewound and not run again yet"
    )
    reused: bool = Field(default=False, description="Taken over, with its outputs, from the run this reruns")


class ApprovalInfo(BaseModel):
    id: str
    run_id: str
    step: str
    status: str
    kind: str
    title: str
    description: str | None
    approvers: list[str]
    required: int
    allow_self_approval: bool
    requested_by: str
    created_at: float
    expires_at: float | None
    form: dict[str, Any] | None = Field(description="A form approval's fields: name -> type, required, ...")
    can_revise: bool


class EventInfo(BaseModel):
    seq: int
    type: str
    step: str | None
    data: dict[str, Any]
    at: float


class RunDetail(RunSummary):
    outputs: dict[str, Any] | None
    rerun_of: str | None = Field(default=None, description="The run this one reruns (workflow rerun --from)")
    rerun_from: str | None = Field(default=None, description="The step the rerun started again from")
    steps: list[StepInfo]
    approvals: list[ApprovalInfo]
    events: list[EventInfo]


class RollbackRequest(Body):
    to: str | None = Field(
        default=None, max_length=200, description="Compensate only the steps after this one"
    )


class RewindRequest(Body):
    to: str = Field(min_length=1, max_length=200, description="A checkpoint's name, or a step that succeeded")


class Done(BaseModel):
    run_id: str
    message: str = Field(description="What was done, as chat says it")


# -- approvals -----------------------------------------------------------------------------------------


class ApprovalList(BaseModel):
    approvals: list[ApprovalInfo]


class Decision(Body):
    decision: Literal["approve", "reject", "changes"]
    comment: str | None = Field(default=None, max_length=3000)
    feedback: str | None = Field(
        default=None, max_length=3000, description="What should change (decision `changes`)"
    )
    fields: dict[str, InputValue] = Field(
        default_factory=dict, max_length=100, description="A form approval's fields (decision `approve`)"
    )


class DecisionResult(BaseModel):
    approval_id: str
    run_id: str
    resolved: bool = Field(description="Whether this decision settled the request")
    message: str = Field(description="What chat would have answered")


# -- outbound webhooks ---------------------------------------------------------------------------------


class NewWebhook(Body):
    url: str = Field(
        min_length=1, max_length=2000, description="Where to POST the events: an http(s) URL with a host"
    )
    events: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Event patterns: `run.*`, a name such as `run.finished`, or `*` for every event",
    )


class WebhookInfo(BaseModel):
    id: str
    url: str
    events: list[str] = Field(description="The patterns as given")
    created_by: str
    created_at: float


class WebhookCreated(WebhookInfo):
    secret: str = Field(
        description="The signing secret (whsec_...), shown only in this answer: the receiver verifies "
        "webhook-signature with it"
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookInfo]


class DeliveryAttempt(BaseModel):
    attempt: int
    at: float
    took: float = Field(description="Seconds the attempt took")
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came")
    response: str | None = Field(description="The first bytes of the receiver's answer")
    error: str | None


class DeliveryInfo(BaseModel):
    id: int
    subscription_id: str
    message_id: str = Field(description="webhook-id: the same on every retry")
    event_type: str
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    next_at: float
    error: str | None
    created_at: float
    first_attempt_at: float | None
    finished_at: float | None
    attempt_log: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryInfo]
