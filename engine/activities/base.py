"""What every activity receives and how it reports failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.activities.http_guard import HttpGuard

if TYPE_CHECKING:
    import aiohttp

    from engine.activities.processes import Spawned
    from engine.spec import ErrorKind

    FailureKind = ErrorKind | Literal["unavailable"]  # unavailable: skip the step, don't fail it


@dataclass(frozen=True)
class LlmSettings:
    """How to reach an OpenAI-compatible server; None in ActivityContext means no LLM is configured."""

    api_key: str
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout: float = 60.0
    max_retries: int = 2
    max_tokens: int = (
        1024  # every request sets it: self-hosted servers otherwise generate until their context ends
    )


@dataclass(frozen=True)
class StepCall:
    """One attempt of one step (or one fan-out item), with every expression already rendered."""

    run_id: str
    step_key: str  # "build", or "shard[3]" for a fan-out item
    step_id: str
    attempt: int
    idempotency_key: str  # the same on every attempt of this step key in this run
    kind: str
    params: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    compensation: bool = False


@dataclass
class ActivityContext:
    """Shared resources for activities, owned by the runtime."""

    workflows_dir: Path = Path("workflows")
    llm: LlmSettings | None = None
    http_session: aiohttp.ClientSession | None = None
    http_guard: HttpGuard = field(default_factory=HttpGuard)  # where http steps may not go
    kill_grace: float = 5.0  # seconds between SIGTERM and SIGKILL
    output_cap: int = 64 * 1024  # bytes kept of stdout and of stderr (the tail)
    # Told of each step program as it starts, before it is waited on, so a crash leaves a record of it.
    on_spawn: Callable[[StepCall, Spawned], Awaitable[None]] | None = None
    # Told the text so far of an llm step as it streams, many times a second: the listener coalesces.
    on_text: Callable[[StepCall, str], None] | None = None
    # Told of each chunk a step program writes (stdout and stderr), as it arrives: a runner streams them.
    on_output: Callable[[bytes], None] | None = None


class StepFailure(Exception):
    """A step attempt that failed; ``kind`` decides whether a retry policy applies."""

    def __init__(self, kind: FailureKind, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message
        self.result = result or {}
