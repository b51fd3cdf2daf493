"""Runs with HTTP and LLM steps against local servers, durable waits across restarts, and timers
shared by two processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from bot.runtime.runtime import Runtime
from tests.conftest import FakeClock
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import finished, status_is, workflow


async def test_http_step_against_a_local_server(runtime: Runtime) -> None:
    seen: list[dict[str, object]] = []

    async def deploy(request: web.Request) -> web.Response:
        seen.append({"body": await request.json(), "key": request.headers.get("Idempotency-Key")})
        return web.json_response({"version": "1.2.3"}, status=201)

    app = web.Application()
    app.router.add_post("/deploy", deploy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        text = f"""
name: api
inputs: {{service: {{type: string, required: true}}}}
steps:
  call:
    http: {{method: POST, url: "http://127.0.0.1:{port}/deploy", json: {{service: "${{{{ inputs.service }}}}"}}, expect_status: 201}}
    outputs: {{version: "${{{{ result.json.version }}}}"}}
  say: {{needs: [call], notify: "deployed ${{{{ steps.call.outputs.version }}}}"}}
"""
        started = await runtime.submit(workflow(text), {"service": "api"}, "alice")
        row = await finished(runtime, started.run_id)
        assert row.status == "succeeded", row.error
        assert row.outputs["say"] == {"text": "deployed 1.2.3"}
        assert seen == [{"body": {"service": "api"}, "key": f"{started.run_id}:call"}]
    finally:
        await runner.cleanup()


async def test_llm_step_with_the_real_openai_client(make_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async with FakeOpenAI() as fake:
        fake.script(Text(json.dumps({"summary": "all good", "risk": "low"})))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        runtime: Runtime = await make_runtime(openai_api_key="sk-test", openai_base_url=fake.base_url)
        text = """
name: summarise
steps:
  ask:
    llm:
      model: test-model
      system: You summarise deploys.
      prompt: "Summarise: ${{ run.workflow }}"
      json_schema: {type: object, properties: {summary: {type: string}, risk: {type: string}}, required: [summary, risk]}
"""
        started = await runtime.submit(workflow(text), {}, "alice")
        row = await finished(runtime, started.run_id)
        assert row.status == "succeeded", row.error
        result = row.outputs["ask"]
        assert result["json"] == {"summary": "all good", "risk": "low"}
        assert result["usage"]["total_tokens"] > 0
        [body] = fake.completions
        assert body["model"] == "test-model"
        assert body["messages"][-1]["content"] == "Summarise: summarise"


async def test_llm_step_is_skipped_with_a_clear_message_without_an_llm(runtime: Runtime) -> None:
    text = """
name: no_llm
steps:
  ask: {llm: {prompt: "hi"}}
  after: {needs: [ask], trigger: none_failed, notify: "done"}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    row = await finished(runtime, started.run_id)
    steps = {s.key: s for s in await runtime.store.step_rows(started.run_id)}
    assert row.status == "succeeded"
    assert steps["ask"].status == "skipped"
    assert "set OPENAI_API_KEY" in (steps["ask"].error or "")
    assert steps["after"].status == "succeeded"


async def test_a_durable_wait_survives_a_restart(make_runtime) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    first: Runtime = await make_runtime(clock=clock)
    text = """
name: pause
steps:
  nap: {wait: 10m}
  wake: {needs: [nap], notify: "awake"}
"""
    started = await first.submit(workflow(text), {}, "alice")
    await status_is(first, started.run_id, "waiting")
    await first.stop()
    clock.advance(11 * 60)  # the deadline passes while no process runs
    second: Runtime = await make_runtime(clock=clock)
    assert await second.fire_due() == 1
    row = await finished(second, started.run_id)
    assert row.status == "succeeded"


async def test_a_due_timer_fires_once_across_two_processes(make_runtime) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    one: Runtime = await make_runtime(clock=clock)
    two: Runtime = await make_runtime(clock=clock)
    text = """
name: pause
steps:
  nap: {wait: 1m}
  wake: {needs: [nap], notify: "awake"}
"""
    started = await one.submit(workflow(text), {}, "alice")
    await status_is(one, started.run_id, "waiting")
    clock.advance(61)
    fired = await asyncio.gather(one.fire_due(), two.fire_due(), one.fire_due(), two.fire_due())
    assert sum(fired) == 1
    row = await finished(one, started.run_id)
    assert row.status == "succeeded"
    events = [e.type for e in await one.store.events_after(started.run_id)]
    assert events.count("step_succeeded") == 2


async def test_approval_timeout_rejects_by_default(make_runtime) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    runtime: Runtime = await make_runtime(clock=clock)
    text = """
name: gate
steps:
  ask: {approval: {title: "ok?", timeout: 4h}}
"""
    started = await runtime.submit(workflow(text), {}, "alice")
    await status_is(runtime, started.run_id, "waiting")
    clock.advance(3 * 3600)
    assert await runtime.fire_due() == 0
    clock.advance(3600 + 1)
    assert await runtime.fire_due() == 1
    row = await finished(runtime, started.run_id)
    assert row.status == "failed"
    assert "on_timeout is reject" in row.error
    [] = await runtime.approvals.pending()


async def test_a_run_in_another_process_is_cancelled_through_the_inbox(make_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner: Runtime = await make_runtime()
    other: Runtime = await make_runtime()
    text = """
name: long
steps:
  long: {run: ["sleep", "30"]}
"""
    started = await owner.submit(workflow(text), {}, "alice")
    await status_is(owner, started.run_id, "running")
    await other.cancel(started.run_id, by="bob")  # the owner holds the lease, so it applies the cancel
    row = await finished(owner, started.run_id, timeout=10)
    assert row.status == "cancelled"
    assert started.run_id not in other.live
