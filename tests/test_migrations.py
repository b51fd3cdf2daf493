"""The migrations build exactly the tables the code declares (no drift between them)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.conversations import tables as conversation_tables  # noqa: F401  (its tables join the metadata)
from bot.storage.database import create_engine, migrate
from bot.storage.tables import metadata


async def test_the_migrated_schema_matches_the_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await _diff(conn)
    finally:
        await engine.dispose()
    assert diff == []


async def _diff(conn: AsyncConnection) -> list[object]:
    def compare(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return [d for d in compare_metadata(context, metadata) if not _ignorable(d)]

    return await conn.run_sync(compare)


def _ignorable(diff: object) -> bool:
    # Alembic's own version table is not ours to declare.
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def test_head_names_the_newest_migration() -> None:
    # migrate() skips Alembic when the database is at HEAD, so a HEAD left behind would leave
    # every existing database without the newest migration.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.migrations.versions import HEAD
    from bot.storage.database import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]
