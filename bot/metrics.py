"""Prometheus metrics: one registry per process object (never the global default), and what feeds it.

The runtime, the outbox and the conversations record into the ``Metrics`` their process gave them; the
figures that are a count of rows (approvals pending, the queue, the outbox backlog) are read from the
database when ``/metrics`` is scraped and handed to ``Snapshot``, so they agree across processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds: from a quick step to an hour-long one, and from an instant approval to a day.
DURATIONS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HUMAN = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
LATENESS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
RUN_FINISHES = {"run_finished"}


@dataclass
class Figures:
    """What the database says at a scrape: counts by label value, and the ages that alerts watch."""

    approvals_pending: int = 0
    approval_oldest_age: float | None = None
    approval_next_expiry: float | None = None  # seconds until the first pending approval times out
    queue_waiting: dict[str, int] = field(default_factory=dict)  # by platform
    queue_oldest_wait: dict[str, float] = field(default_factory=dict)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    outbox_oldest: dict[str, float] = field(default_factory=dict)
    runner_jobs_waiting: int = 0  # remote step jobs queued for a runner
    runner_jobs_running: int = 0  # leased to a runner
    runner_oldest_wait: float | None = None  # seconds the longest-queued remote job has waited


class Snapshot(Collector):
    """Yields the last ``Figures`` read; a series with nothing to say (no approval pending) is left out."""

    def __init__(self) -> None:
        self.figures = Figures()

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        yield _gauge(
            "switchboard_approvals_pending", "Approval requests waiting for a decision", f.approvals_pending
        )
        if f.approval_oldest_age is not None:
            yield _gauge(
                "switchboard_approval_oldest_pending_seconds",
                "Age of the oldest approval request still waiting",
                f.approval_oldest_age,
            )
        if f.approval_next_expiry is not None:
            yield _gauge(
                "switchboard_approval_next_expiry_seconds",
                "Seconds until the first pending approval with a timeout expires",
                f.approval_next_expiry,
            )
        yield _by_platform("switchboard_queue_waiting", "Conversations waiting for an agent", f.queue_waiting)
        yield _by_platform(
            "switchboard_queue_oldest_wait_seconds",
            "How long the longest-waiting conversation in the queue has waited",
            f.queue_oldest_wait,
        )
        yield _gauge(
            "switchboard_runner_jobs_waiting", "Remote step jobs waiting for a runner", f.runner_jobs_waiting
        )
        yield _gauge(
            "switchboard_runner_jobs_running", "Remote step jobs leased to a runner", f.runner_jobs_running
        )
        if f.runner_oldest_wait is not None:
            yield _gauge(
                "switchboard_runner_oldest_wait_seconds",
                "How long the longest-waiting remote step job has waited for a runner",
                f.runner_oldest_wait,
            )
        yield _by_platform(
            "switchboard_outbox_pending", "Chat messages and card edits not delivered yet", f.outbox_pending
        )
        yield _by_platform(
            "switchboard_outbox_lag_seconds",
            "Age of the oldest undelivered chat message or card edit",
            f.outbox_oldest,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _by_platform(name: str, doc: str, values: dict[str, float] | dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["platform"])
    for platform, value in sorted(values.items()):
        family.add_metric([platform], value)
    return family


class Metrics:
    """Every series Switchboard exports, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.snapshot = Snapshot()
        r.register(self.snapshot)
        self.runs_started = Counter("switchboard_runs_started", "Runs started", ["workflow"], registry=r)
        self.runs_finished = Counter(
            "switchboard_runs_finished", "Runs finished, by outcome", ["workflow", "outcome"], registry=r
        )
        self.run_duration = Histogram(
            "switchboard_run_duration_seconds",
            "Runs from start to finish",
            ["workflow", "outcome"],
            buckets=DURATIONS,
            registry=r,
        )
        self.step_duration = Histogram(
            "switchboard_step_duration_seconds",
            "Step attempts, by kind and outcome",
            ["kind", "outcome"],
            buckets=DURATIONS,
            registry=r,
        )
        self.approval_decisions = Histogram(
            "switchboard_approval_decision_seconds",
            "From an approval request to its decision, by outcome",
            ["outcome"],
            buckets=HUMAN,
            registry=r,
        )
        self.queue_wait = Histogram(
            "switchboard_queue_wait_seconds",
            "From a hand-over to an agent's claim",
            buckets=HUMAN,
            registry=r,
        )
        self.queue_handle = Histogram(
            "switchboard_queue_handle_seconds",
            "From an agent's claim to the conversation's resolution",
            buckets=HUMAN,
            registry=r,
        )
        self.outbox_delivered = Counter(
            "switchboard_outbox_delivered", "Chat messages and card edits delivered", ["platform"], registry=r
        )
        self.outbox_errors = Counter(
            "switchboard_outbox_errors",
            "Failed deliveries, retried or given up",
            ["platform", "final"],
            registry=r,
        )
        self.timer_lateness = Histogram(
            "switchboard_timer_lateness_seconds",
            "How late a timer fired after its due time",
            ["kind"],
            buckets=LATENESS,
            registry=r,
        )
        self.lease_takeovers = Counter(
            "switchboard_lease_takeovers", "Runs taken over from another process's lease", registry=r
        )
        self.runner_jobs_lost = Counter(
            "switchboard_runner_jobs_lost",
            "Remote step jobs whose runner stopped heart-beating (the step followed its on_interrupt)",
            registry=r,
        )
        self.drivers_started = Counter(
            "switchboard_run_drivers_started",
            "Run drivers started in this process (a new run, a resume, a takeover, a wake of a parked run)",
            registry=r,
        )
        self.leases_lost = Counter(
            "switchboard_leases_lost", "Runs whose lease another process took from this one", registry=r
        )
        self.llm_tokens = Counter(
            "switchboard_llm_tokens",
            "LLM tokens used, by source (step or assistant) and type",
            ["source", "type"],
            registry=r,
        )
        self.llm_errors = Counter(
            "switchboard_llm_errors", "LLM calls that failed, by source", ["source"], registry=r
        )

    # -- what the runtime commits ------------------------------------------------------------------

    def observe_run(self, state: Any, rows: list[dict[str, Any]], now: float) -> None:
        """Count a run's batch of events (``Runtime.observers`` calls this with every batch it stores)."""
        workflow = state.workflow.name
        for row in rows:
            kind, data, key = row["type"], row["data"], row["step_key"]
            if kind == "run_started":
                self.runs_started.labels(workflow).inc()
            elif kind == "run_finished":
                outcome = str(data.get("status", "unknown"))
                self.runs_finished.labels(workflow, outcome).inc()
                self.run_duration.labels(workflow, outcome).observe(max(now - state.created_at, 0.0))
            elif kind in ("step_succeeded", "step_failed") and key in state.steps:
                self._step(state, key, "succeeded" if kind == "step_succeeded" else "failed", data)
            elif kind == "approval_decided" and not data.get("auto") and key in state.steps:
                began = state.steps[key].started_at
                if began is not None:
                    self.approval_decisions.labels(str(data.get("outcome"))).observe(max(now - began, 0.0))

    def _step(self, state: Any, key: str, outcome: str, data: dict[str, Any]) -> None:
        step = state.steps[key]
        kind = state.workflow.steps[step.step_id].kind
        if isinstance(data.get("duration"), int | float):
            self.step_duration.labels(kind, outcome).observe(max(float(data["duration"]), 0.0))
        if kind != "llm":
            return
        if outcome == "failed":
            self.llm_errors.labels("step").inc()
        elif isinstance(step.outputs, dict):
            self.llm_used("step", step.outputs.get("usage"))

    def llm_used(self, source: str, usage: Any) -> None:
        """Count the tokens of one LLM reply (its ``usage``, as a dict or the client's object)."""
        if usage is None:
            return
        for name in ("prompt_tokens", "completion_tokens"):
            value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
            if isinstance(value, int) and value > 0:
                self.llm_tokens.labels(source, name.removesuffix("_tokens")).inc(value)

    def timer_fired(self, kind: str, due_at: float, now: float) -> None:
        """A timer fired: how late (``approval_escalate:2`` counts as ``approval_escalate``)."""
        self.timer_lateness.labels(kind.partition(":")[0]).observe(max(now - due_at, 0.0))
