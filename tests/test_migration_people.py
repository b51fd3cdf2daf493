"""Migration 0019 on both databases: the CLI's bare names become the console user's ref, once each."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from bot.migrations.versions import HEAD
from bot.storage.database import MIGRATIONS, create_engine, migrate
from bot.storage.tables import approval_audit, approval_votes, approvals, runs, webhook_subscriptions


def _upgrade_to(target: str):  # type: ignore[no-untyped-def]
    def run(sync_conn: sa.Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, target)

    return run


def _run(run_id: str, started_by: str) -> dict[str, object]:
    return {
        "id": run_id,
        "workflow": "deploy_prod",
        "digest": "d",
        "status": "waiting",
        "inputs": {},
        "started_by": started_by,
        "meta": {},
        "cancel_requested": False,
        "created_at": 1.0,
        "updated_at": 1.0,
    }


def _approval(approval_id: str, run_id: str, requested_by: str) -> dict[str, object]:
    return {
        "id": approval_id,
        "run_id": run_id,
        "step_key": "approve_prod",
        "status": "pending",
        "title": "Ship?",
        "context": {},
        "approvers": ["user:carol"],
        "required": 2,
        "allow_self_approval": False,
        "requested_by": requested_by,
        "on_timeout": "reject",
        "created_at": 1.0,
        "version": 0,
    }


def _vote(approval_id: str, actor: str) -> dict[str, object]:
    return {"approval_id": approval_id, "actor": actor, "decision": "approve", "source": "cli", "at": 2.0}


async def test_bare_names_become_console_refs(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0018"))
            await conn.execute(
                runs.insert(),
                [
                    _run("r-cli", "alice"),
                    _run("r-at", "@bob"),
                    _run("r-console", "console:alice"),
                    _run("r-slack", "slack:U024BE7LH"),
                    _run("r-hook", "webhook:github"),
                ],
            )
            await conn.execute(
                approvals.insert(),
                [_approval("a1", "r-cli", "alice"), _approval("a2", "r-slack", "slack:U024BE7LH")],
            )
            await conn.execute(
                approval_votes.insert(),
                [
                    _vote("a1", "carol"),
                    _vote("a1", "dana"),
                    _vote("a1", "console:dana"),  # dana voted from the CLI and the console: one person
                    _vote("a2", "slack:U0CAROL"),
                ],
            )
            hook = {
                "url": "https://example.test/h",
                "events": ["run.*"],
                "secret": "whsec_x",
                "created_at": 1.0,
            }
            await conn.execute(
                webhook_subscriptions.insert(),
                [
                    {**hook, "id": "w1", "created_by": "ops"},
                    {**hook, "id": "w2", "created_by": "console:ops"},
                ],
            )
            audit = {
                "approval_id": "a1",
                "run_id": "r-cli",
                "action": "approve",
                "detail": {},
                "source": "cli",
            }
            await conn.execute(approval_audit.insert(), [{**audit, "actor": "carol", "at": 2.0}])

        found, reached = await migrate(engine)
        assert (found, reached) == ("0018", HEAD)  # 0019 and any newer ones

        async with engine.connect() as conn:
            starters = dict((await conn.execute(sa.select(runs.c.id, runs.c.started_by))).all())
            askers = dict((await conn.execute(sa.select(approvals.c.id, approvals.c.requested_by))).all())
            voters = sorted(
                (await conn.execute(sa.select(approval_votes.c.approval_id, approval_votes.c.actor))).all()
            )
            adders = set((await conn.execute(sa.select(webhook_subscriptions.c.created_by))).scalars())
            audited = (await conn.execute(sa.select(approval_audit.c.actor))).scalars().all()
        assert starters == {
            "r-cli": "console:alice",
            "r-at": "console:bob",
            "r-console": "console:alice",
            "r-slack": "slack:U024BE7LH",
            "r-hook": "webhook:github",
        }
        assert askers == {"a1": "console:alice", "a2": "slack:U024BE7LH"}
        assert voters == [("a1", "console:carol"), ("a1", "console:dana"), ("a2", "slack:U0CAROL")]
        assert adders == {"console:ops"}
        assert audited == ["carol"]  # the audit is append-only: it keeps what was written
    finally:
        await engine.dispose()
