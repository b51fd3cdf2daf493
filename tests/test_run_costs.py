"""A run's LLM tokens and cost, read from its llm steps' stored ``usage``: in ``workflow status``, on the
run's dashboard page (in a real browser), and as "cost per run" in ``conversations stats`` and on the
dashboard's conversations page. The real runtime and the real openai client against the fake server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from pydantic import SecretStr

from bot.conversations.transcripts import stats
from bot.process import App, start_app, stop_app
from bot.runtime.costs import Prices
from engine.activities import llm
from engine.usage import LlmUsage, run_usage
from tests.accessibility import serious_violations
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import eventually, finished, workflow
from tests.test_cli import cli, environment
from tests.test_console import browser
from tests.test_console_api import Client, console_settings, write_workflows
from tests.test_dashboard_pages import signed_in

__all__ = ["browser"]  # the console harness's fixture, used by name below

# Three LLM calls (one step, and a fan-out of two items: each item holds its usage, the fan-out's
# outputs only theirs), and a step that is no LLM call.
SUMMARISE = """
name: summarise
steps:
  draft:
    llm: {prompt: "write a summary of the week"}
  each:
    for_each: ["api", "web"]
    llm: {system: "be brief", prompt: "one line about ${{ item }}"}
  note:
    needs: [draft]
    run: ["python3", "-c", "print('noted')"]
"""
PRICED = {"llm_price_prompt_per_mtok": 150.0, "llm_price_completion_per_mtok": 600.0, "cost_currency": "EUR"}
PRICED_ENV = {
    "SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK": "150",
    "SWITCHBOARD_LLM_PRICE_COMPLETION_PER_MTOK": "600",
    "SWITCHBOARD_COST_CURRENCY": "EUR",
}
ANSWER = "all is well this week"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
    await llm.close_clients()


def expected(fake: FakeOpenAI) -> LlmUsage:
    """What the fake server reported, from the requests it received (one word stands for one token)."""
    prompt = sum(len(str(m.get("content") or "").split()) for b in fake.completions for m in b["messages"])
    return LlmUsage(len(fake.completions), prompt, len(ANSWER.split()) * len(fake.completions))


def euros(usage: LlmUsage) -> str:
    return f"{(usage.prompt_tokens * 150 + usage.completion_tokens * 600) / 1e6:.4f} EUR"


async def test_workflow_status_and_the_stats_show_a_runs_tokens_and_cost(
    make_runtime: Callable[..., Any], fake: FakeOpenAI, workflows_dir: Path
) -> None:
    runtime = await make_runtime(openai_api_key=SecretStr("k"), openai_base_url=fake.base_url)
    fake.script(Text(ANSWER), Text(ANSWER), Text(ANSWER))
    flow = workflow(SUMMARISE, workflows_dir)
    started = await runtime.submit(flow, {}, "console:alice")
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    want = expected(fake)
    assert want.calls == 3 and want.prompt_tokens > 0
    assert run_usage(flow.spec, await runtime.store.step_rows(row.id)) == want

    db = runtime.settings.database_url
    status = await cli(environment(db, workflows_dir, **PRICED_ENV), "workflow", "status", row.id)
    assert status.code == 0, status.out
    line = (
        f"  llm: {want.tokens:,} tokens ({want.prompt_tokens:,} prompt + {want.completion_tokens:,} "
        f"completion) in 3 calls, {euros(want)}"
    )
    assert line in status.out.splitlines(), status.out
    as_json = json.loads(
        (await cli(environment(db, workflows_dir, **PRICED_ENV), "workflow", "status", row.id, "--json")).out
    )
    assert as_json["llm"]["tokens"] == want.tokens and as_json["llm"]["calls"] == 3
    assert f"{as_json['llm']['cost']:.4f} {as_json['llm']['currency']}" == euros(want)
    unpriced = await cli(environment(db, workflows_dir), "workflow", "status", row.id)
    assert "in 3 calls (no price set: SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK" in unpriced.out

    # A second run without LLM calls counts as a run, not in the cost per run.
    plain = workflow("name: plain\nsteps:\n  a: {run: [python3, -c, 'print(1)']}\n", workflows_dir)
    await finished(runtime, (await runtime.submit(plain, {}, "console:alice")).run_id)
    (plain_row,) = await runtime.store.list_runs(limit=1)
    no_llm = await cli(environment(db, workflows_dir), "workflow", "status", plain_row.id)
    assert "llm:" not in no_llm.out  # a workflow without llm steps says nothing about them

    figures = (await stats(runtime.store.engine, prices=Prices(150.0, 600.0, currency="EUR"))).report()
    assert figures["runs"] == 2 and figures["runs_with_llm"] == 1
    assert figures["run_llm_tokens"] == want.tokens
    assert f"{figures['ai_cost_per_run']:.4f} EUR" == euros(want)
    table = await cli(environment(db, workflows_dir, **PRICED_ENV), "conversations", "stats")
    assert table.code == 0, table.out
    assert re.search(rf"^ai cost per run +{re.escape(str(figures['ai_cost_per_run']))} EUR$", table.out, re.M)
    assert re.search(r"^runs with llm +1$", table.out, re.M), table.out
    assert re.search(r"^ai cost per conversation +n/a$", table.out, re.M)  # no conversations here


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, fake: FakeOpenAI) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "summarise.yaml").write_text(SUMMARISE)
    settings = console_settings(tmp_path, workflows_dir).model_copy(
        update={"openai_api_key": SecretStr("k"), "openai_base_url": fake.base_url, **PRICED}
    )
    started = await start_app(settings)
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def test_the_run_page_and_the_figures_show_the_cost(
    app: App, browser: Browser, fake: FakeOpenAI
) -> None:
    fake.script(Text(ANSWER), Text(ANSWER), Text(ANSWER))
    async with Client(app.url) as http:
        await http.command("/workflow run summarise")
        run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
        row = await finished(app.runtime, run_id)
        assert row.status == "succeeded"
        want = expected(fake)

        problems: list[str] = []
        context, page = await signed_in(browser, f"{app.url}/dashboard/runs/{run_id}", "alice", 390, problems)
        try:
            await expect(page.locator("#run-llm")).to_have_text(
                f"{want.tokens:,} tokens ({want.prompt_tokens:,} prompt + {want.completion_tokens:,} "
                f"completion) in 3 calls, {euros(want)}"
            )
            assert await serious_violations(page) == []
        finally:
            await context.close()
        assert problems == []

        context, page = await signed_in(browser, f"{app.url}/dashboard/conversations", "dave", 1440, problems)
        try:
            cost = (want.prompt_tokens * 150 + want.completion_tokens * 600) / 1e6
            await expect(page.locator('[data-figure="cost-per-run"] td').first).to_have_text(
                str(round(cost, 4))
            )
            await expect(page.locator('[data-figure="run-cost"]')).to_contain_text(
                f"({want.tokens} tokens, 1 of 1 run)"
            )
        finally:
            await context.close()
        assert problems == []


# What is stored is what is counted: an llm step's declared outputs keep usage or drop it, and a step that
# is no llm step is never counted, whatever its outputs say.
MIXED = """
name: mixed
steps:
  kept:
    llm: {prompt: "one two three"}
    outputs: {usage: "${{ result.usage }}"}
  dropped:
    llm: {prompt: "four five six"}
    outputs: {text: "${{ result.text }}"}
  pretend:
    run: ["python3", "-c", "import json; print(json.dumps({'prompt_tokens': 10**6, 'completion_tokens': 10**6}))"]
    outputs: {usage: "${{ fromJSON(result.stdout) }}"}
"""


async def test_only_the_usage_llm_steps_stored_counts(
    make_runtime: Callable[..., Any], fake: FakeOpenAI, workflows_dir: Path
) -> None:
    runtime = await make_runtime(openai_api_key=SecretStr("k"), openai_base_url=fake.base_url)
    fake.script(Text(ANSWER), Text(ANSWER))
    flow = workflow(MIXED, workflows_dir)
    row = await finished(runtime, (await runtime.submit(flow, {}, "console:alice")).run_id)
    assert row.status == "succeeded", row.error
    steps = {s.key: s for s in await runtime.store.step_rows(row.id)}
    assert steps["pretend"].outputs["usage"]["prompt_tokens"] == 1_000_000  # stored, but no llm step
    kept = steps["kept"].outputs["usage"]
    want = LlmUsage(1, kept["prompt_tokens"], kept["completion_tokens"])
    assert want.prompt_tokens == 3 and want.completion_tokens == len(ANSWER.split())
    assert run_usage(flow.spec, steps.values()) == want
    figures = (await stats(runtime.store.engine, prices=Prices(150.0, 600.0))).report()
    assert (figures["runs"], figures["runs_with_llm"], figures["run_llm_tokens"]) == (1, 1, want.tokens)
    assert figures["ai_cost_per_run"] == round(
        (want.prompt_tokens * 150 + want.completion_tokens * 600) / 1e6, 4
    )
