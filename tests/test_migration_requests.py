"""Migration 0024 on both databases: old requests get their request number and their true revision."""

from __future__ import annotations

import sqlalchemy as sa

from bot.migrations.versions import HEAD
from bot.storage.database import create_engine, migrate
from bot.storage.tables import approvals, runs, step_runs
from tests.test_migration_people import _approval, _run, _upgrade_to


async def test_old_requests_are_numbered_and_a_retry_is_no_revision(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0020"))
            await conn.execute(runs.insert(), [_run("r1", "console:bob")])
            # Before 0024 each ask took the next revision: asked, changes requested, asked again,
            # rejected, and asked once more by a retry of the run.
            asked = [("a1", 1, "changes"), ("a2", 2, "rejected"), ("a3", 3, "pending")]
            await conn.execute(
                approvals.insert(),
                [
                    {**_approval(aid, "r1", "console:bob"), "revision": rev, "status": status}
                    for aid, rev, status in asked
                ],
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO step_runs (run_id, key, step_id, status, attempt, tolerated, finish_seq)"
                    " VALUES ('r1', 'approve_prod', 'approve_prod', 'waiting', 3, false, 0),"
                    " ('r1', 'build', 'build', 'succeeded', 2, false, 1)"
                )
            )

        found, reached = await migrate(engine)
        assert (found, reached) == ("0020", HEAD)

        async with engine.connect() as conn:
            numbered = (
                await conn.execute(
                    sa.select(approvals.c.id, approvals.c.revision, approvals.c.request).order_by(
                        approvals.c.id
                    )
                )
            ).all()
            steps = dict((await conn.execute(sa.select(step_runs.c.key, step_runs.c.revision))).all())
        assert [tuple(r) for r in numbered] == [("a1", 1, 1), ("a2", 2, 2), ("a3", 2, 3)]
        assert steps == {"approve_prod": 2, "build": 0}
    finally:
        await engine.dispose()
