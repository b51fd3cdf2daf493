"""Pure rules: trigger conditions and retry delays (secret masking is in ``engine.masking``)."""

from __future__ import annotations

import random
from collections.abc import Iterable

from engine.spec import RetrySpec
from engine.state import StepState, StepStatus

DEFAULT_RETRY_INITIAL = 1.0
DEFAULT_RETRY_MAX = 100.0


def trigger_allows(trigger: str, needs: Iterable[StepState]) -> bool:
    """Whether a step whose needs have all finished should run under ``trigger``."""
    states = list(needs)
    if trigger == "all_done":
        return True
    if trigger == "one_success":
        return not states or any(s.ok for s in states)
    if trigger == "one_failed":
        return any(s.status == StepStatus.FAILED and not s.tolerated for s in states)
    if trigger == "none_failed":
        return all(s.ok or s.status == StepStatus.SKIPPED for s in states)
    return all(s.ok for s in states)  # all_success


def should_retry(policy: RetrySpec | None, attempt: int, error_kind: str) -> bool:
    """Whether a failed attempt number ``attempt`` (1-based) gets another try."""
    if policy is None or attempt >= policy.attempts or error_kind == "cancelled":
        return False
    return policy.on is None or error_kind in policy.on


def retry_delay(policy: RetrySpec, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``: initial x factor^(attempt-1), capped, with jitter."""
    exponential = policy.backoff == "exponential"
    delay = policy.initial * policy.factor ** (attempt - 1) if exponential else policy.initial
    delay = min(delay, policy.max)
    if policy.jitter:
        spread = delay * policy.jitter
        delay += (rng or random).uniform(-spread, spread)
    return max(delay, 0.0)
