"""The LLM tokens a run spent, read from its ``llm`` steps' stored outputs (``usage``). Pure: no I/O.

A fan-out's items each hold their own ``usage``; the fan-out step's outputs (``{"items": [...]}``) hold
none at the top, so nothing is counted twice. An ``llm`` step that declares its own ``outputs`` keeps
``usage`` only if it passes it on (``usage: ${{ result.usage }}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.spec import Workflow
from engine.state import StepState


@dataclass(frozen=True)
class LlmUsage:
    """Tokens over some LLM calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: LlmUsage) -> LlmUsage:
        return LlmUsage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


def usage_of(usage: Any) -> LlmUsage:
    """One step's ``usage`` mapping as one call's counts (anything else: no call)."""
    if not isinstance(usage, Mapping):
        return LlmUsage()
    # A call whose server reported no counts is still a call (its tokens are unknown, so not counted).
    return LlmUsage(1, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def is_llm_step(workflow: Workflow, step_id: str) -> bool:
    """Whether ``step_id`` is an ``llm`` step of ``workflow`` (a step the definition no longer has: no)."""
    spec = workflow.steps.get(step_id)
    return spec is not None and spec.kind == "llm"


def run_usage(workflow: Workflow, steps: Iterable[StepState]) -> LlmUsage:
    """The tokens of a run's ``llm`` steps, from their stored outputs."""
    total = LlmUsage()
    for step in steps:
        if is_llm_step(workflow, step.step_id) and isinstance(step.outputs, Mapping):
            total += usage_of(step.outputs.get("usage"))
    return total


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
