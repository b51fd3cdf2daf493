"""OpenTelemetry traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, each run is a trace and each step a span
under the run's span, sent over OTLP/HTTP to a collector (here a local receiver that decodes the protobuf
with OpenTelemetry's own message types); two runtimes working on one run put their spans in one trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bot.runtime.presence import install
from bot.tracing import run_span_id, trace_id
from tests.helpers import eventually, finished, workflow

ORIGIN = {"platform": "console", "channel": "ops", "thread": None, "channel_name": "ops"}
FLOW = """
name: traced
steps:
  build: {run: ["python3", "-c", "print('built')"]}
  test: {run: ["python3", "-c", "import sys; sys.exit('tests failed')"], needs: [build]}
"""


class Collector:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` with an ExportTraceServiceRequest body."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def receive(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            for scope in resource.scope_spans:
                self.spans.extend((service, span) for span in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.receive)
    found.runner = web.AppRunner(app, access_log=None)
    await found.runner.setup()
    site = web.TCPSite(found.runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield found
    await found.runner.cleanup()


async def test_a_run_is_a_trace_and_its_steps_are_spans(
    make_runtime: Callable[..., Any], collector: Collector
) -> None:
    runtime = await make_runtime(otel_endpoint=collector.url)
    install(runtime)
    started = await runtime.submit(workflow(FLOW), {}, "console:alice", meta={"origin": ORIGIN})
    assert (await finished(runtime, started.run_id)).status == "failed"
    await runtime.before_release[-1]()  # flush, as stopping the runtime does

    spans = await eventually(lambda: len(collector.spans) >= 3 and collector.spans)
    by_name = {span.name: (service, span) for service, span in spans}
    assert set(by_name) == {"run traced", "step build", "step test"}
    run_id = started.run_id
    tid = trace_id(run_id).to_bytes(16, "big")
    root = by_name["run traced"][1]
    assert root.span_id == run_span_id(run_id).to_bytes(8, "big") and root.parent_span_id == b""
    for name in ("step build", "step test"):
        service, span = by_name[name]
        assert service == "switchboard" and span.trace_id == tid and span.parent_span_id == root.span_id
        assert root.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
    assert by_name["step build"][1].end_time_unix_nano <= by_name["step test"][1].start_time_unix_nano
    attributes = {a.key: a.value for a in by_name["step test"][1].attributes}
    assert attributes["switchboard.run_id"].string_value == run_id
    assert attributes["switchboard.attempt"].int_value == 1
    assert (
        by_name["step test"][1].status.code == 2 and "tests failed" in by_name["step test"][1].status.message
    )
    assert root.status.code == 2 and by_name["step build"][1].status.code == 1  # ERROR, OK

    # A retry from another runtime (another process's, say) lands in the same trace.
    other = await make_runtime(otel_endpoint=collector.url)
    install(other)
    await other.retry(run_id, by="console:alice")
    assert (await finished(other, run_id)).status == "failed"
    await other.before_release[-1]()
    later = await eventually(lambda: len(collector.spans) >= 5 and collector.spans[3:])
    assert {s.trace_id for _, s in later} == {tid}
    assert {s.name for _, s in later} == {"run traced", "step test"}
