"""What LLM tokens and agents' time cost: the price table (``SWITCHBOARD_LLM_PRICE_*_PER_MTOK``,
``SWITCHBOARD_AGENT_HOURLY_COST``), and a run's tokens and cost as the CLI and the dashboard print them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.config import Settings
from bot.storage.runs import RunStore
from engine.usage import LlmUsage, is_llm_step

log = logging.getLogger(__name__)

UNPRICED = (
    "no price set: SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK and "
    "SWITCHBOARD_LLM_PRICE_COMPLETION_PER_MTOK give a cost"
)


@dataclass(frozen=True)
class Prices:
    """What the cost figures multiply: the LLM's price per million tokens, and an agent's hourly cost."""

    prompt_per_mtok: float | None = None
    completion_per_mtok: float | None = None
    agent_hourly: float | None = None
    currency: str = "USD"

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        return cls(
            settings.llm_price_prompt_per_mtok,
            settings.llm_price_completion_per_mtok,
            settings.agent_hourly_cost,
            settings.cost_currency,
        )

    def llm(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prompt_per_mtok is None and self.completion_per_mtok is None:
            return None
        prompt = prompt_tokens * (self.prompt_per_mtok or 0.0)
        return (prompt + completion_tokens * (self.completion_per_mtok or 0.0)) / 1_000_000

    def human(self, seconds: float) -> float | None:
        return None if self.agent_hourly is None else seconds / 3600 * self.agent_hourly

    def of(self, usage: LlmUsage) -> float | None:
        """What ``usage`` cost (None without a price table)."""
        return self.llm(usage.prompt_tokens, usage.completion_tokens)


def usage_line(usage: LlmUsage, prices: Prices) -> str:
    """``1,234 tokens (1,000 prompt + 234 completion) in 2 calls, 0.0012 USD``; or that there were none."""
    if not usage.calls:
        return "no LLM calls"
    calls = f"{usage.calls} call{'s' if usage.calls != 1 else ''}"
    text = (
        f"{usage.tokens:,} tokens ({usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion) "
        f"in {calls}"
    )
    cost = prices.of(usage)
    return f"{text}, {money(cost, prices.currency)}" if cost is not None else f"{text} ({UNPRICED})"


def money(amount: float, currency: str) -> str:
    """An amount as the figures show it: four decimals (a run's LLM calls often cost under a cent)."""
    return f"{amount:.4f} {currency}"


@dataclass(frozen=True)
class RunsUsage:
    """The LLM tokens of the runs created over a period."""

    runs: int = 0  # every run created in the period
    with_llm: int = 0  # those whose llm steps made calls
    total: LlmUsage = field(default_factory=LlmUsage)


# The llm steps of each workflow version, by digest: a digest names one text for good, so this is never
# stale; bounded, since the stats page asks every few seconds and versions only accumulate.
_LLM_STEPS: dict[str, frozenset[str]] = {}
MAX_VERSIONS_KEPT = 1000


async def runs_usage(store: RunStore, since: float) -> RunsUsage:
    """The tokens the ``llm`` steps of the runs created since ``since`` spent, from their stored outputs.

    Which steps are ``llm`` steps is read from each workflow version (once per process); the sums are the
    database's.
    """
    count, pairs = await store.steps_since(since)
    llm_steps = [(digest, step_id) for digest, step_id in pairs if step_id in await _llm_steps(store, digest)]
    calls, prompt, completion, with_llm = await store.usage_totals_since(since, llm_steps)
    return RunsUsage(count, with_llm, LlmUsage(calls, prompt, completion))


async def _llm_steps(store: RunStore, digest: str) -> frozenset[str]:
    known = _LLM_STEPS.get(digest)
    if known is not None:
        return known
    from engine.loader import WorkflowInvalid, parse_stored  # YAML parsing is needed only here

    source, path = await store.source_of(digest)
    try:
        spec = parse_stored(source, path)
    except WorkflowInvalid:  # a version that no longer parses: its steps' kinds are unknown
        log.warning("workflow version %s does not parse; its runs' LLM tokens are not counted", digest[:12])
        return frozenset()
    if len(_LLM_STEPS) >= MAX_VERSIONS_KEPT:
        _LLM_STEPS.clear()
    found = _LLM_STEPS[digest] = frozenset(sid for sid in spec.steps if is_llm_step(spec, sid))
    return found
