"""``switchboard approvals expire ID`` through the real CLI, and each revision's ``parent`` in the audit."""

from __future__ import annotations

import time
from pathlib import Path

from bot.approvals.store import ApprovalStore
from bot.cli.audit import audit_records
from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from handlers.types import Command
from tests.conftest import FakeClock
from tests.helpers import eventually, finished, workflow
from tests.test_approvals_chat import ERIN, MALLORY, OPS, Chat, card_of, chat, request_of, said

__all__ = ["chat"]  # the fixture, shared with the chat tests
from tests.test_approvals_engine import REVISE, MakeRuntime, decide, waiting_request
from tests.test_cli import cli, environment, finish, start, wait_for

ASK = """
name: ask
steps:
  ask: {approval: {title: "Ship?", approvers: ["user:carol"], on_timeout: approve}}
  ship: {needs: [ask], notify: shipped}
"""


async def test_expire_withdraws_a_request_and_rejects_its_step(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "ask.yaml").write_text(ASK)
    env = environment(db_url, tmp_path)
    runner = start(env, "workflow", "run", "ask", "--as", "dana")
    engine = create_engine(db_url)
    try:
        store = ApprovalStore(engine, time.time)

        async def asked() -> bool:
            return len(await store.pending()) == 1

        await wait_for(asked)
        [request] = await store.pending()
        withdrawn, ran = await finish(
            start(env, "approvals", "expire", request.id[:6], "--as", "erin", "-m", "wrong build"), runner
        )
        assert withdrawn.code == 0, withdrawn.out
        assert f"Withdrew request {request.id} (withdrawn by @erin: wrong build); step ask is rejected" in (
            withdrawn.out
        )
        run = await RunStore(engine).run_row(request.run_id)
        assert run is not None and run.status == "failed", withdrawn.out  # on_timeout: approve never applies
        again = await cli(env, "approvals", "expire", request.id, "--as", "erin")
        assert again.code == 1 and "This request expired at" in again.out, again.out
        [expired] = [r for r in await audit_records(engine, request.run_id) if r["action"] == "expired"]
        assert (expired["actor"], expired["source"]) == ("console:erin", "cli")
        assert expired["detail"] == {"withdrawn": True, "reason": "wrong build", "outcome": "rejected"}
        steps = {s.key: s for s in await RunStore(engine).step_rows(request.run_id)}
        assert steps["ask"].outputs["withdrawn_by"] == "console:erin"
        assert ran.code == 1 and "withdrawn by @erin: wrong build" in ran.out, ran.out
    finally:
        await engine.dispose()


async def test_each_revision_names_its_parent_request_in_the_audit(make_runtime: MakeRuntime) -> None:
    clock = FakeClock()
    runtime = await make_runtime(clock=clock)
    run_id, first = await waiting_request(runtime, REVISE)
    clock.advance(60)
    await decide(runtime, first, "carol", "changes", comment="bump the version")

    async def asked_again() -> str | None:
        pending = [a for a in await runtime.approvals.pending() if a.run_id == run_id]
        return pending[0].id if pending else None

    second = await eventually(asked_again)
    await decide(runtime, second, "carol", "approve")
    assert (await finished(runtime, run_id)).status == "succeeded"
    requested = [r for r in await audit_records(runtime.store.engine, run_id) if r["action"] == "requested"]
    assert [(r["approval_id"], r["detail"].get("parent")) for r in requested] == [
        (first, None),
        (second, first),
    ]


GUARDED = """
name: guarded
permissions: {cancel: ["group:release-managers"]}
steps:
  ask: {approval: {title: "Rotate keys?", approvers: ["user:dave"]}}
"""


async def test_approvals_expire_in_chat_withdraws_for_who_may_cancel_the_run(
    chat: Chat, workflows_dir: Path
) -> None:
    workflow(GUARDED, workflows_dir)
    run_id = await chat.run("guarded")
    request = await request_of(chat.runtime, run_id)
    refused = await chat.router.command(Command(MALLORY, OPS, "approvals", f"expire {request.id}"))
    assert said(refused).startswith("You may not cancel runs of guarded"), said(refused)
    reply = await chat.router.command(Command(ERIN, OPS, "approvals", f"expire {request.id[:6]} not needed"))
    assert said(reply).startswith(f"Withdrew request {request.id} (withdrawn by @erin: not needed)")
    row = await finished(chat.runtime, run_id)
    assert row.status == "failed" and "withdrawn by @erin" in (row.error or "")
    card, _ = await card_of(chat.runtime, request.id)
    assert card.status == "expired" and card.buttons == ()
    [expired] = [
        r for r in await audit_records(chat.runtime.store.engine, run_id) if r["action"] == "expired"
    ]
    assert (expired["actor"], expired["source"]) == ("console:erin", "console")
