"""OpenTelemetry traces of runs, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: a run is a trace and each step
attempt a span under the run's span, sent over OTLP/HTTP (``/v1/traces``).

The trace id and the run's span id come from the run id, so every process that works on a run (a resumed
run, a retry from the CLI) puts its spans in the same trace without passing anything along. Spans are
built from the stored start and end times as each step ends (the run's span when the run ends), so a
trace shows when things happened, not when they were reported. Needs ``pip install 'switchboard[otel]'``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from engine.state import RunState, StepState

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)
STEP_ENDS = ("step_succeeded", "step_failed", "step_cancelled", "step_skipped")
NS = 1_000_000_000


def trace_id(run_id: str) -> int:
    """The run's trace id: 128 bits of the run id's SHA-256."""
    return int(hashlib.sha256(f"trace:{run_id}".encode()).hexdigest()[:32], 16)


def run_span_id(run_id: str) -> int:
    """The run's span id (the parent of its steps' spans): 64 bits of the run id's SHA-256."""
    return int(hashlib.sha256(f"run:{run_id}".encode()).hexdigest()[:16], 16)


def step_span_id(run_id: str, step: StepState) -> int:
    """One attempt of one step, as it ended (a rerun after a retry ends later, so it is another span)."""
    key = f"step:{run_id}:{step.key}:{step.attempt}:{step.finished_at}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) or 1


class RunTraces:
    """A runtime observer that exports spans; built by ``make_traces`` when tracing is configured."""

    def __init__(self, processor: BatchSpanProcessor, service: str = "switchboard") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        self.resource = Resource.create({"service.name": service})
        self.scope = InstrumentationScope("switchboard")

    def __call__(self, _batch: Any, state: RunState, rows: list[dict[str, Any]], now: float) -> None:
        for row in rows:
            key = row.get("step_key")
            if row["type"] in STEP_ENDS and key and key in state.steps:
                step = state.steps[key]
                if step.started_at is not None:
                    self._step(state, step, row["type"], now)
            elif row["type"] == "run_finished":
                self._run(state, now)

    async def close(self) -> None:
        """Send what is buffered (at stop)."""
        await asyncio.to_thread(self.processor.force_flush, 5000)

    def _step(self, state: RunState, step: StepState, kind: str, now: float) -> None:
        started = step.started_at if step.started_at is not None else now
        attributes = {
            "switchboard.run_id": state.run_id,
            "switchboard.workflow": state.workflow.name,
            "switchboard.step": step.key,
            "switchboard.attempt": step.attempt,
            "switchboard.status": str(step.status),
        }
        error = step.error if kind == "step_failed" else None
        self._export(
            f"step {step.key}",
            state.run_id,
            step_span_id(state.run_id, step),
            True,
            started,
            step.finished_at or now,
            attributes,
            error,
        )

    def _run(self, state: RunState, now: float) -> None:
        attributes = {
            "switchboard.run_id": state.run_id,
            "switchboard.workflow": state.workflow.name,
            "switchboard.status": str(state.status),
            "switchboard.started_by": state.started_by,
        }
        error = state.error if str(state.status) != "succeeded" else None
        self._export(
            f"run {state.workflow.name}",
            state.run_id,
            run_span_id(state.run_id),
            False,
            state.created_at,
            now,
            attributes,
            error,
        )

    def _export(
        self,
        name: str,
        run_id: str,
        span_id: int,
        child: bool,
        start: float,
        end: float,
        attributes: dict[str, Any],
        error: str | None,
    ) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(trace_id(run_id), span_id, is_remote=False, trace_flags=flags)
        parent = SpanContext(trace_id(run_id), run_span_id(run_id), is_remote=True, trace_flags=flags)
        status = Status(StatusCode.ERROR, error[:500]) if error else Status(StatusCode.OK)
        span = ReadableSpan(
            name,
            context=context,
            parent=parent if child else None,
            resource=self.resource,
            attributes=attributes,
            status=status,
            start_time=int(start * NS),
            end_time=int(max(end, start) * NS),
            instrumentation_scope=self.scope,
        )
        try:
            self.processor.on_end(span)
        except Exception:
            log.exception("tracing: could not queue span %s of run %s", name, run_id)


def make_traces(endpoint: str | None) -> RunTraces | None:
    """Run traces to ``endpoint`` (the OTLP/HTTP base, e.g. http://collector:4318), or None when unset or
    when the OpenTelemetry packages are not installed (said once in the log)."""
    if not endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'switchboard[otel]' to send run traces"
        )
        return None
    url = endpoint.rstrip("/") + "/v1/traces"
    return RunTraces(BatchSpanProcessor(OTLPSpanExporter(endpoint=url), schedule_delay_millis=500))
