"""What happens to a run (signals in) and what the core asks the runtime to do (effects out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Start:
    """A new run begins."""


@dataclass(frozen=True)
class Interruption:
    """A step whose program a crash left where this process cannot see or stop it (another host)."""

    key: str
    host: str
    at: float  # when the interrupted attempt started
    still_running: bool = False  # on this host, but it would not die


@dataclass(frozen=True)
class Resume:
    """A run is loaded after a restart or crash; steps found running are run again, or follow
    their ``on_interrupt`` when ``interrupted`` lists them."""

    interrupted: tuple[Interruption, ...] = ()
    attached: tuple[str, ...] = ()  # remote steps whose job still stands: wait for it, do not rerun


@dataclass(frozen=True)
class StepLost:
    """A step's runner stopped heart-beating mid-attempt: the step follows its ``on_interrupt``."""

    key: str
    attempt: int
    host: str  # the runner's name
    at: float  # when the attempt started


@dataclass(frozen=True)
class StepWaiting:
    """A remote step's job is queued and no connected runner has its labels (said once per attempt)."""

    key: str
    attempt: int
    text: str  # "waiting for a runner labelled deploy"


@dataclass(frozen=True)
class StepProgress:
    """The newest output lines of a step running on a runner (coalesced: one every few seconds)."""

    key: str
    attempt: int
    text: str


@dataclass(frozen=True)
class StepCompleted:
    key: str
    attempt: int
    result: dict[str, Any]
    compensation: bool = False


@dataclass(frozen=True)
class StepFailed:
    key: str
    attempt: int
    kind: str  # timeout | command | http | connection | action | llm | cancelled | child
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    compensation: bool = False


@dataclass(frozen=True)
class TimerFired:
    key: str  # a step key, or "" for the run's own timeout
    kind: str  # retry | wait | run_timeout


@dataclass(frozen=True)
class ApprovalDecided:
    key: str
    outcome: str  # approved | rejected | cancel
    outputs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Cancel:
    by: str
    reason: str = ""


@dataclass(frozen=True)
class Rollback:
    by: str
    to: str | None = None


@dataclass(frozen=True)
class Rewind:
    """Go back to a checkpoint (or a step): undo what finished after it, then go on from there."""

    by: str
    to: str


@dataclass(frozen=True)
class Retry:
    """Run a failed run's failed steps again (and what they had held back); finished steps stay done."""

    by: str


Signal = (
    Start
    | Resume
    | StepCompleted
    | StepFailed
    | StepLost
    | StepWaiting
    | StepProgress
    | TimerFired
    | ApprovalDecided
    | Cancel
    | Rollback
    | Retry
    | Rewind
)


@dataclass(frozen=True)
class StartStep:
    """Run one attempt of an activity (run, http, action, llm) or start a sub-workflow."""

    key: str
    step_id: str
    kind: str
    attempt: int
    params: dict[str, Any]
    timeout: float | None = None
    compensation: bool = False
    runs_on: tuple[str, ...] = ()  # runner labels; empty: it runs in the process holding the run
    reattach: bool = False  # a resumed remote attempt: its job is stored already, wait for its end


@dataclass(frozen=True)
class CancelStep:
    key: str


@dataclass(frozen=True)
class SetTimer:
    key: str
    kind: str
    due_at: float


@dataclass(frozen=True)
class RequestApproval:
    """Ask people to decide; ``auto`` means the rules already approved it (recorded, not asked)."""

    key: str
    title: str
    description: str | None
    context: dict[str, str]
    approvers: list[str]
    required: int
    allow_self_approval: bool
    timeout: float | None
    on_timeout: str
    kind: str = "binary"
    veto: bool = True
    channel: str | None = None
    notify: str = "channel"
    escalation: tuple[tuple[float, bool, tuple[str, ...]], ...] = ()  # (after, remind, add_approvers)
    form: dict[str, Any] = field(default_factory=dict)  # field name -> InputSpec as a dict
    revision: int = 1
    request: int = 1  # the step's n-th ask: a retry of the run asks again in the same revision
    max_revisions: int = 3
    can_revise: bool = False
    auto: str | None = None  # why it was approved without asking
    auto_after: float | None = None  # approved automatically then, unless someone objected


@dataclass(frozen=True)
class Notify:
    key: str
    text: str
    channel: str | None = None


@dataclass(frozen=True)
class Event:
    """A line of the run's timeline."""

    type: str
    key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Effect = StartStep | CancelStep | SetTimer | RequestApproval | Notify


@dataclass
class Decision:
    """The outcome of one ``advance``: what to store, then what to do."""

    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)  # step keys whose state changed
    run_changed: bool = False
