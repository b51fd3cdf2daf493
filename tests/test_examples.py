"""The example workflows in workflows/: each is valid, and each runs end to end through the real CLI.

No network and no LLM: the runs use SQLite files in temporary folders, and the pipeline's llm step is
expected to be skipped with a message saying how to configure one.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bot.approvals.store import ApprovalStore
from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from engine.loader import load_workflow, validate_paths
from tests.test_cli import TOOK, environment, finish, finish_now, run_id, start, wait_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "workflows"
SCHEMA_LINE = "# yaml-language-server: $schema=../workflow.schema.json"
NEW = ("incident", "budget", "pipeline", "deploy_prod")


def sqlite(folder: Path, name: str) -> str:
    """A SQLite database URL of its own for one run."""
    return f"sqlite+aiosqlite:///{folder / name}.db"


def test_every_workflow_file_validates() -> None:
    results = validate_paths([EXAMPLES])
    assert {path.stem for path, _ in results} >= {"deploy", *NEW}
    for _, errors in results:
        assert errors == [], "\n".join(map(str, errors))
    for name in NEW:
        path = EXAMPLES / f"{name}.yaml"
        assert path.read_text().splitlines()[0] == SCHEMA_LINE
        spec = load_workflow(path).spec
        assert spec.name == name and spec.description


def test_examples_run_end_to_end(tmp_path: Path, subtests: pytest.Subtests) -> None:
    """Every example that needs no decision, run side by side, each on its own database."""
    commands = {
        "deploy": ["deploy", "--input", "service=api"],
        "incident_sev1": [
            "incident",
            "-i",
            "service=api",
            "-i",
            "severity=sev1",
            "-i",
            "summary=5xx on /login",
        ],
        "incident_sev4": ["incident", "-i", "service=billing", "-i", "severity=sev4"],
        "budget_small": ["budget", "-i", "item=USB-C cable", "-i", "amount=19.90", "--as", "dana"],
        "deploy_prod_staging": ["deploy_prod", "-i", "service=api", "-i", "env=staging", "--as", "dana"],
        "pipeline": ["pipeline"],
    }
    env = {name: environment(sqlite(tmp_path, name), EXAMPLES) for name in commands}
    procs = {name: start(env[name], "workflow", "run", *args) for name, args in commands.items()}
    done = {name: finish_now(proc) for name, proc in procs.items()}

    with subtests.test("deploy"):
        result = done["deploy"]
        assert result.code == 0, result.out
        assert "Deploy of api finished: succeeded" in result.out and "✓ run succeeded" in result.out

    with subtests.test("incident sev1: pages on-call and summarises the diagnostics"):
        result = done["incident_sev1"]
        assert result.code == 0, result.out
        assert "🚨 sev1 on api: 5xx on /login" in result.out  # GitHub's language has no upper()
        assert "📟 Paging the api on-call for a sev1 incident" in result.out
        summary = result.out[result.out.index("Diagnostics for api (sev1):") :]
        assert re.search(r"• (ok|WARN) disk: \d+% used on /var/lib/api\n", summary), summary
        assert re.search(r"• (ok|WARN) deploys: \d in the last 24h, latest api v1\.\d+\.\d\n", summary), (
            summary
        )
        assert re.search(r"• (ok|WARN) error rate: \d\.\d\d% of requests", summary), summary
        assert "Automation for the api incident is done (succeeded)" in result.out
        assert re.search(r'"disk": "(ok|WARN) disk: ', result.out), result.out  # the workflow's outputs

    with subtests.test("incident sev4: no page"):
        result = done["incident_sev4"]
        assert result.code == 0, result.out
        assert re.search(r"⏭ page_oncall +skipped: its 'if' condition was false", result.out), result.out
        assert "Paging" not in result.out
        assert "Automation for the billing incident is done (succeeded)" in result.out

    with subtests.test("budget: a small order is approved automatically, with the reason"):
        result = done["budget_small"]
        assert result.code == 0, result.out
        reason = "19.90 EUR is within the automatic tier"
        assert f"approval approved: {reason}" in result.out, result.out
        assert "waiting for approval" not in result.out
        placed = r"Order PO-[0-9A-F]{8} placed for @dana: USB-C cable, 19.9 EUR "
        assert re.search(placed + rf"\(approved automatically: {reason}\)", result.out), result.out
        assert '"approved_by": null' in result.out
        assert "✓ run succeeded" in result.out

    with subtests.test("deploy_prod to staging: auto_approve lets it through without waiting"):
        result = done["deploy_prod_staging"]
        assert result.code == 0, result.out
        assert "approval approved: auto_approve: ${{ inputs.env == 'staging' }}" in result.out, result.out
        assert "waiting for approval" not in result.out
        assert re.search(r"✓ deploy +" + TOOK, result.out), result.out
        assert re.search(
            r"Deploy of api v1\.\d+\.0 to staging: succeeded \(approved automatically\)", result.out
        ), result.out
        assert '"decision": "approved"' in result.out and "✓ run succeeded" in result.out

    with subtests.test("pipeline: the llm step is skipped when no LLM is configured"):
        result = done["pipeline"]
        assert result.code == 0, result.out
        for index in range(3):
            assert f"✓ extract[{index}]" in result.out
        assert re.search(r"⏭ digest +skipped: No LLM is configured: set OPENAI_API_KEY", result.out), (
            result.out
        )
        assert "📊 Pipeline done: 3 partitions, 24 rows" in result.out
        assert "No LLM digest: the digest step was skipped." in result.out
        assert "✓ run succeeded" in result.out
        status = finish_now(start(env["pipeline"], "workflow", "status", run_id(result.out)))
        assert status.code == 0, status.out
        assert re.search(r"^  digest +skipped .*No LLM is configured", status.out, re.MULTILINE), status.out
        assert re.search(r"^  summarise +succeeded", status.out, re.MULTILINE), status.out


async def test_budget_large_order_waits_for_an_approval(tmp_path: Path) -> None:
    env = environment(sqlite(tmp_path, "budget"), EXAMPLES)
    runner = start(env, "workflow", "run", "budget", "-i", "item=laptop", "-i", "amount=2400", "--as", "dana")
    engine = create_engine(env["DATABASE_URL"])
    try:
        approvals = ApprovalStore(engine, time.time)

        async def requested() -> bool:
            return bool(await approvals.pending())

        await wait_for(requested)
        [request] = await approvals.pending()
        [row] = await RunStore(engine).list_runs()
        assert row.status == "waiting" and runner.poll() is None  # the run waits; `workflow run` follows it

        [listed] = await finish(start(env, "approvals", "list"))
        assert listed.code == 0, listed.out
        assert f"{request.id}  run {row.id}  step approve: Order laptop for 2400 EUR" in listed.out
        assert "[1 of group:finance, user:cfo, expires" in listed.out

        decided, ran = await finish(
            start(
                env,
                "approvals",
                "decide",
                request.id,
                "approve",
                "--as",
                "carol",
                "--group",
                "finance",
                "--comment",
                "within Q4 budget",
            ),
            runner,
        )
        assert decided.code == 0, decided.out
        assert "Approved by @carol; the run continues" in decided.out
        assert ran.code == 0, ran.out
        assert "waiting for approval: Order laptop for 2400 EUR" in ran.out
        assert re.search(r"placed for @dana: laptop, 2400 EUR \(approved by @carol\)", ran.out), ran.out
        assert '"approved_by": "console:carol"' in ran.out
        final = await RunStore(engine).run_row(row.id)
        assert final is not None and final.status == "succeeded"
        assert run_id(ran.out) == row.id
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        await engine.dispose()
