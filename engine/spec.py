"""The workflow format: typed models of a workflow file, validated by pydantic.

Positions (path:line:col) and friendly messages are added by ``engine.loader``; these models hold
the rules about shapes and values.
"""

from __future__ import annotations

import json
import re
import weakref
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from engine.background import background_problem
from engine.checkpoints import checkpoint_problem
from engine.durations import parse_duration
from engine.handover_spec import (
    HandoverRoute as HandoverRoute,  # re-exported: engine.schema reads models here
)
from engine.handover_spec import HandoverScope as HandoverScope
from engine.handover_spec import HandoverTriggers as HandoverTriggers
from engine.handover_spec import WorkflowHandover as WorkflowHandover
from engine.trigger_spec import ScheduleSpec as ScheduleSpec  # re-exported: engine.schema reads models here
from engine.trigger_spec import TriggersSpec as TriggersSpec
from engine.trigger_spec import WebhookSpec as WebhookSpec

MAX_STEPS = 500
MAX_FANOUT = 10_000
MAX_OUTPUT_BYTES = 256 * 1024
MAX_EVENTS_PER_RUN = 50_000
MAX_CONCURRENCY = 1_000

STEP_KINDS = ("run", "http", "action", "llm", "notify", "wait", "approval", "workflow")
COMPENSATE_KINDS = ("run", "http", "action", "notify")
TRIGGERS = ("all_success", "all_done", "one_success", "one_failed", "none_failed")
ERROR_KINDS = ("timeout", "command", "http", "connection", "action", "llm")
STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ACTION_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _duration(value: Any) -> float:
    if not isinstance(value, str | int | float):  # pydantic only reports ValueError; a list would crash
        raise ValueError(f"a duration must be a number of seconds or text like 30s, 10m, 2h, got {value!r}")
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]
Trigger = Literal["all_success", "all_done", "one_success", "one_failed", "none_failed"]
OnInterrupt = Literal["rerun", "fail", "ask"]
RUNNER_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_RUNNER_LABELS = 16
REMOTE_KINDS = ("run", "http", "action")  # the kinds a runner can take (docs/runners in README)
ErrorKind = Literal["timeout", "command", "http", "connection", "action", "llm"]


class Strict(BaseModel):
    """Base for every model of the format: unknown keys are errors, not silence."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class InputSpec(Strict):
    type: Literal["string", "text", "number", "integer", "boolean", "enum", "list", "object"] = "string"
    required: bool = False
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.type == "enum" and not self.enum:
            raise ValueError("type 'enum' needs an 'enum:' list of allowed values")
        if self.default is not None:
            self.coerce(self.default)
        return self

    def coerce(self, raw: Any) -> Any:
        """Turn a raw value (command-line text or YAML) into this input's type, or raise ValueError."""
        value: Any = raw
        kind = self.type
        if kind in ("number", "integer"):
            if isinstance(raw, bool):
                raise ValueError(f"expected a {kind}, got {raw!r}")
            try:
                value = int(raw) if kind == "integer" else float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"expected a {kind}, got {raw!r}") from None
            if kind == "number" and float(value).is_integer() and not isinstance(raw, float):
                value = int(value)
        elif kind == "boolean":
            if isinstance(raw, bool):
                value = raw
            elif isinstance(raw, str) and raw.lower() in ("true", "yes", "on", "1"):
                value = True
            elif isinstance(raw, str) and raw.lower() in ("false", "no", "off", "0"):
                value = False
            else:
                raise ValueError(f"expected true or false, got {raw!r}")
        elif kind in ("list", "object"):
            if isinstance(raw, str):
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError:
                    if kind == "list":
                        value = [part.strip() for part in raw.split(",") if part.strip()]
                    else:
                        raise ValueError(f"expected a JSON object, got {raw!r}") from None
            expected = list if kind == "list" else dict
            if not isinstance(value, expected):
                raise ValueError(f"expected a {kind}, got {raw!r}")
        elif kind in ("string", "text", "enum") and not isinstance(raw, str):
            value = raw if kind == "enum" else str(raw)
        if self.enum is not None and value not in self.enum:
            allowed = ", ".join(str(v) for v in self.enum)
            raise ValueError(f"{value!r} is not one of: {allowed}")
        return value


class RetrySpec(Strict):
    attempts: int = Field(default=3, ge=1, le=100)
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial: Duration = 1.0
    max: Duration = 100.0
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    on: list[ErrorKind] | None = None

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter(cls, value: Any) -> Any:
        if value is True:
            return 0.2
        if value is False:
            return 0.0
        return value


class HttpSpec(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, str] = {}
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: list[int] | None = None
    timeout: Duration | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @model_validator(mode="after")
    def _one_body(self) -> HttpSpec:
        if self.json_body is not None and self.body is not None:
            raise ValueError("use either 'json' or 'body', not both")
        return self


class LlmSpec(Strict):
    prompt: str
    model: str | None = None
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    json_schema: dict[str, Any] | None = None


class NotifySpec(Strict):
    text: str
    channel: str | None = None


class WaitSpec(Strict):
    duration: Duration | None = Field(default=None, alias="for")
    until: str | None = None

    @model_validator(mode="after")
    def _one(self) -> WaitSpec:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait takes a duration (wait: 10m) or a time (wait: {until: ...})")
        return self


class EscalationRung(Strict):
    """One rung of an approval's escalation ladder, counted from the request."""

    after: Duration
    remind: bool = False
    add_approvers: list[str] = []

    @model_validator(mode="after")
    def _does_something(self) -> EscalationRung:
        if not self.remind and not self.add_approvers:
            raise ValueError("an escalation rung needs 'remind: true' or 'add_approvers', or both")
        return self


class BudgetTier(Strict):
    """Who approves amounts up to ``up_to`` (the last tier may leave it out: everything above)."""

    up_to: float | None = None
    auto: bool = False
    approvers: list[str] = []
    required: int = Field(default=1, ge=1, le=50)


class BudgetSpec(Strict):
    amount: str | float
    currency: str = "EUR"
    tiers: list[BudgetTier] = Field(min_length=1)


NotifyWhere = Literal["channel", "dm", "email"]
NOTIFY_ORDER = ("channel", "dm", "email")


class ApprovalSpec(Strict):
    title: str
    description: str | None = None
    kind: Literal["binary", "form", "budget"] = "binary"
    context: dict[str, str] = {}
    approvers: list[str] = []
    required: int = Field(default=1, ge=1, le=50)
    veto: bool = True
    allow_self_approval: bool = False
    channel: str | None = None
    # Where the request goes: `channel`, `dm`, `email`, or a list such as [channel, email].
    notify: NotifyWhere | list[NotifyWhere] = "channel"
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve", "cancel"] = "reject"
    auto_approve_after: Duration | None = None  # approved then unless someone objected first
    escalation: list[EscalationRung] = []
    auto_approve: str | None = None
    revise: str | None = None
    max_revisions: int = Field(default=3, ge=0, le=20)
    form: dict[str, InputSpec] = {}
    budget: BudgetSpec | None = None

    @field_validator("notify")
    @classmethod
    def _notify_fits(cls, value: str | list[str]) -> str | list[str]:
        ways = [value] if isinstance(value, str) else value
        if not ways:
            raise ValueError("'notify:' needs at least one of channel, dm, email")
        if len(set(ways)) != len(ways):
            raise ValueError("'notify:' names a way twice")
        if "channel" in ways and "dm" in ways:
            raise ValueError("'notify:' takes channel or dm, not both (dm falls back to the channel)")
        return value

    @property
    def notify_mode(self) -> str:
        """The ways the request is sent, as stored with it: "channel", "dm+email", "email"..."""
        ways = [self.notify] if isinstance(self.notify, str) else self.notify
        return "+".join(sorted(ways, key=NOTIFY_ORDER.index))

    @model_validator(mode="after")
    def _kind_fits(self) -> ApprovalSpec:
        if self.kind == "form" and not self.form:
            raise ValueError("an approval of kind 'form' needs a 'form:' block of typed fields")
        if self.kind == "budget" and self.budget is None:
            raise ValueError("an approval of kind 'budget' needs a 'budget:' block (amount, currency, tiers)")
        if self.kind != "form" and self.form:
            raise ValueError("'form:' fields need 'kind: form'")
        if self.kind != "budget" and self.budget is not None:
            raise ValueError("'budget:' needs 'kind: budget'")
        after, limit = self.auto_approve_after, self.timeout
        if after is not None and limit is not None and after >= limit:
            raise ValueError(
                f"'auto_approve_after' ({after:g}s) must be shorter than 'timeout' ({limit:g}s): "
                "the request would expire before it could be approved automatically"
            )
        return self


def _wrap_text(value: Any) -> Any:
    return {"text": value} if isinstance(value, str) else value


def _wrap_wait(value: Any) -> Any:
    return {"for": value} if isinstance(value, str | int | float) and not isinstance(value, bool) else value


def _runner_labels_list(_cls: Any, value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _runner_labels(_cls: Any, value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("'runs_on' needs at least one runner label, e.g. [deploy]")
    if len(value) > MAX_RUNNER_LABELS:
        raise ValueError(f"'runs_on' lists {len(value)} labels; the limit is {MAX_RUNNER_LABELS}")
    for label in value:
        if not RUNNER_LABEL.match(label):
            raise ValueError(
                f"runner label {label!r}: use 1-63 letters, digits, '.', '_' or '-', starting with one"
            )
    return sorted(set(value))


def remote_problem(kind: str, what: str) -> str | None:
    """Why a ``what`` (a step, a compensation) of ``kind`` cannot have ``runs_on``, or None when it can."""
    if kind in REMOTE_KINDS:
        return None
    why = {
        "llm": "the model's client and its key stay with the server, and the answer streams from there",
        "notify": "its message is posted by the server",
    }.get(kind, "the server is what it waits on")
    return (
        f"'runs_on' applies to {', '.join(REMOTE_KINDS)} steps and compensations only; "
        f"{'an' if kind[0] in 'aeiou' or kind == 'llm' else 'a'} {kind} {what} runs where its run is ({why})"
    )


class CompensateSpec(Strict):
    run: list[str] | None = None
    env: dict[str, str] = {}
    cwd: str | None = None
    http: HttpSpec | None = None
    action: str | None = None
    with_: dict[str, Any] = Field(default={}, alias="with")
    notify: Annotated[NotifySpec | None, BeforeValidator(_wrap_text)] = None
    timeout: Duration | None = None
    runs_on: list[str] | None = None  # runner labels: it runs on a runner, not where the run is

    _labels_list = field_validator("runs_on", mode="before")(classmethod(_runner_labels_list))
    _labels = field_validator("runs_on")(classmethod(_runner_labels))

    @model_validator(mode="after")
    def _one_kind(self) -> CompensateSpec:
        _check_one_kind(self, COMPENSATE_KINDS)
        problem = remote_problem(self.kind, "compensation") if self.runs_on is not None else None
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def kind(self) -> str:
        return _kind_of(self, COMPENSATE_KINDS)


class Step(Strict):
    name: str | None = None
    description: str | None = None
    run: list[str] | None = None
    env: dict[str, str] = {}
    cwd: str | None = None
    http: HttpSpec | None = None
    action: str | None = None
    llm: LlmSpec | None = None
    notify: Annotated[NotifySpec | None, BeforeValidator(_wrap_text)] = None
    wait: Annotated[WaitSpec | None, BeforeValidator(_wrap_wait)] = None
    approval: ApprovalSpec | None = None
    workflow: str | None = None
    with_: dict[str, Any] = Field(default={}, alias="with")
    needs: list[str] = Field(default=[], validation_alias=AliasChoices("needs", "depends_on"))
    if_: str | None = Field(default=None, alias="if")
    trigger: Trigger = "all_success"
    for_each: str | list[Any] | None = None
    timeout: Duration | None = None
    retry: RetrySpec | None = None
    continue_on_error: bool = False
    on_interrupt: OnInterrupt = "rerun"
    runs_on: list[str] | None = None  # runner labels: the step runs on a runner that has them all
    outputs: dict[str, str] = {}
    compensate: CompensateSpec | None = None
    background: bool = False  # nothing waits for it but the run's end (docs/background-steps.md)
    checkpoint: bool | str = False  # a point `workflow rewind --to` can go back to (engine/checkpoints.py)

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_name(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not STEP_ID.match(value):
            raise ValueError(
                f"checkpoint name {value!r} must start with a letter or _ and hold only letters, digits "
                "and _ (or write 'checkpoint: true' to name it after the step)"
            )
        return value

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("if_", mode="before")
    @classmethod
    def _if_literal(cls, value: Any) -> Any:
        # GitHub accepts `if: true` and `if: 0`: a YAML scalar is read as that expression literal.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        return value

    @field_validator("run")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError('\'run\' needs at least the program to start, as a list: ["python3", "x.py"]')
        return value

    @field_validator("run", mode="before")
    @classmethod
    def _no_shell_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "'run' takes a list of arguments, never a shell string: write "
                f"{json.dumps(value.split())} and pass values through 'env'"
            )
        return value

    @field_validator("action")
    @classmethod
    def _action_ref(cls, value: str | None) -> str | None:
        if value is not None and not ACTION_REF.match(value):
            raise ValueError(f"'{value}' is not a 'module:function' reference, e.g. examples.actions:lint")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        _check_one_kind(self, STEP_KINDS)
        if self.on_interrupt != "rerun" and self.run is None and self.runs_on is None:
            raise ValueError(
                "'on_interrupt' applies to 'run' steps, and to steps with 'runs_on': other kinds leave "
                "nothing running after a crash"
            )
        return self

    _labels_list = field_validator("runs_on", mode="before")(classmethod(_runner_labels_list))
    _labels = field_validator("runs_on")(classmethod(_runner_labels))

    @model_validator(mode="after")
    def _remote_kind(self) -> Step:
        problem = remote_problem(self.kind, "step") if self.runs_on is not None else None
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _background_fits(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        problem = background_problem(kinds, self.for_each, self.timeout) if self.background else None
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def kind(self) -> str:
        return _kind_of(self, STEP_KINDS)


class Permissions(Strict):
    run: list[str] = []
    cancel: list[str] | None = None
    rollback: list[str] | None = None


_FOLDERS: dict[int, str] = {}  # id of a loaded Workflow -> its folder, dropped with the model


class Workflow(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    description: str | None = None
    inputs: dict[str, InputSpec] = {}
    secrets: list[str] = []
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY)
    timeout: Duration | None = None
    exclusive: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "An exclusion group, e.g. deploy-${{ inputs.env }}: runs whose group comes to the same text run "
            "one at a time, in the order they were started, across every process; the others wait, pending."
        ),
    )
    on_failure: Literal["compensate", "stop"] = "stop"
    permissions: Permissions = Permissions()
    env: dict[str, str] = {}
    steps: dict[str, Step] = Field(min_length=1, max_length=MAX_STEPS)
    outputs: dict[str, str] = {}
    on: TriggersSpec = TriggersSpec()
    handover: WorkflowHandover | None = Field(
        default=None,
        description=(
            "Hand-over rules for conversations about this workflow (the assistant ran it or asked about "
            "its runs): triggers and routes, over the hand-over file's and the environment's."
        ),
    )

    @property
    def folder(self) -> str | None:
        """The folder the workflow file is in (what hashFiles() reads), when it came from a file."""
        return _FOLDERS.get(id(self))

    def in_folder(self, folder: str | None) -> Workflow:
        """Record the folder the workflow was loaded from (kept beside the model, not in its fields)."""
        if folder is not None and id(self) not in _FOLDERS:
            _FOLDERS[id(self)] = folder
            weakref.finalize(self, _FOLDERS.pop, id(self), None)
        return self

    @model_validator(mode="after")
    def _checkpoints_unique(self) -> Workflow:
        problem = checkpoint_problem(self.steps)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("steps", mode="before")
    @classmethod
    def _step_ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or not STEP_ID.match(key):
                    raise ValueError(
                        f"step id {key!r} must start with a letter or _ and hold only letters, digits and _"
                    )
        return value


def _check_one_kind(model: BaseModel, kinds: tuple[str, ...]) -> None:
    present = [k for k in kinds if getattr(model, k) is not None]
    if not present:
        raise ValueError(f"a step needs exactly one kind: {', '.join(kinds)}")
    if len(present) > 1:
        raise ValueError(
            f"a step has exactly one kind, and this one has {' and '.join(repr(k) for k in present)}; "
            "split it into separate steps joined with 'needs'"
        )


def _kind_of(model: BaseModel, kinds: tuple[str, ...]) -> str:
    return next(k for k in kinds if getattr(model, k) is not None)
