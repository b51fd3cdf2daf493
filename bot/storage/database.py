"""The database connection: SQLite (WAL, synchronous=NORMAL) by default, PostgreSQL via asyncpg."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.config import Settings
from bot.errors import BadInput, UpstreamUnavailable
from bot.storage import redaction

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class PoolSettings:
    """How one process connects: pool bounds and timeouts, PgBouncer mode, the name PostgreSQL shows."""

    size: int = 10
    overflow: int = 10
    timeout: float = 30.0
    recycle: float = 1800.0
    pgbouncer: bool = False
    application_name: str = "switchboard"

    @classmethod
    def of(cls, settings: Settings) -> PoolSettings:
        """The pool settings of ``settings`` (SWITCHBOARD_DB_*)."""
        return cls(
            settings.db_pool_size,
            settings.db_max_overflow,
            settings.db_pool_timeout,
            settings.db_pool_recycle,
            settings.db_pgbouncer,
            settings.db_application_name,
        )


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine for ``settings``' database and connection settings."""
    return create_engine(settings.database_url, PoolSettings.of(settings))


def create_engine(url: str, pool: PoolSettings | None = None) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, synchronous=NORMAL and immediate write locks.

    Every pooled connection is pinged before use, so the first query after a database restart or a
    dropped connection reconnects instead of failing.
    """
    pool = pool or PoolSettings()
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise BadInput(
            f"DATABASE_URL {url!r} is not a database URL, e.g. sqlite+aiosqlite:///./switchboard.db"
        ) from None
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername == "sqlite+aiosqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            parsed, connect_args={"timeout": 30}, json_serializer=_dumps, pool_pre_ping=True
        )
        _sqlite_pragmas(engine)
        redaction.install(engine)
        return engine
    if parsed.drivername != "postgresql+asyncpg":
        raise BadInput(
            f"DATABASE_URL uses {driver!r}; Switchboard supports sqlite+aiosqlite and postgresql+asyncpg"
        )
    server_settings = {"application_name": pool.application_name}
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    schema = parsed.query.get("schema")
    if isinstance(schema, str):
        # ?schema=NAME keeps Switchboard's tables in their own schema of a shared database.
        parsed = parsed.difference_update_query(["schema"])
        server_settings["search_path"] = schema
    if pool.pgbouncer:
        # PgBouncer in transaction mode hands each transaction any server connection, so a statement
        # prepared on one is unknown on the next: no caches, and names that never collide.
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_statement_name,
        )
    engine = create_async_engine(
        parsed,
        pool_size=pool.size,
        max_overflow=pool.overflow,
        pool_timeout=pool.timeout,
        pool_recycle=pool.recycle,
        pool_pre_ping=True,
        json_serializer=_dumps,
        connect_args=connect_args,
    )
    redaction.install(engine)
    _MADE[engine] = (url, pool)
    return engine


# How each PostgreSQL engine was made, so a part that needs connections of its own can have an engine to
# the same database (schema, PgBouncer mode and timeouts included) with another pool size.
_MADE: weakref.WeakKeyDictionary[AsyncEngine, tuple[str, PoolSettings]] = weakref.WeakKeyDictionary()


def companion(engine: AsyncEngine, size: int) -> AsyncEngine | None:
    """Another engine to ``engine``'s PostgreSQL database (the same application name: the same process)
    with a pool of exactly ``size`` connections; None for SQLite, or an engine not made here."""
    made = _MADE.get(engine)
    if made is None:
        return None
    url, pool = made
    return create_engine(url, dataclasses.replace(pool, size=size, overflow=0))


def _statement_name() -> str:
    return f"__sb_{uuid.uuid4().hex}__"


def create_sync_writer(engine: AsyncEngine) -> sa.Engine | None:
    """For SQLite, a synchronous engine on the same file for the journal's writer thread.

    aiosqlite hops to its thread once per statement; a commit of three statements costs five hops.
    The journal instead runs a whole commit in one call on its own thread. PostgreSQL needs none.
    """
    if engine.dialect.name != "sqlite":
        return None
    url = engine.url.set(drivername="sqlite+pysqlite")
    if url.database in (None, "", ":memory:"):
        return None
    writer = sa.create_engine(
        url,
        json_serializer=_dumps,
        poolclass=sa.pool.NullPool,
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    _sqlite_pragmas(writer)
    redaction.install(writer)
    return writer


# Results may hold values JSON has no type for (datetimes, decimals); store their text. One encoder for
# every value: json.dumps with arguments builds a new one per call, which cost as much as the encoding.
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _sqlite_pragmas(engine: AsyncEngine | sa.Engine) -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL + NORMAL survives kill -9 (only power loss can drop the last commits).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(target, "begin")
    def _begin(conn: sa.Connection) -> None:
        # With the driver's own transaction handling off (above), SQLAlchemy's BEGIN is ours to send.
        # It stays deferred so readers never take the write lock; every write transaction starts with a
        # write, so it waits on busy_timeout instead of failing with SQLITE_BUSY_SNAPSHOT. A transaction
        # that must read before it writes asks for IMMEDIATE with the ``sqlite_begin`` option.
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


async def migrate(engine: AsyncEngine) -> tuple[str | None, str]:
    """Apply Alembic migrations up to head (a quick version check skips Alembic when current).

    Returns the revision found and the one reached (None found: a new database).

    Several processes may start at once on a new database, so the upgrade runs under a lock (an
    advisory lock on PostgreSQL, the write lock on SQLite) and checks the version again inside it.
    """
    from bot.migrations.versions import HEAD

    try:
        async with engine.connect() as conn:
            if await _current_revision(conn) == HEAD:
                return HEAD, HEAD
        async with engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                if engine.dialect.name == "postgresql":
                    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7413229)"))
                found = await _current_revision(conn)
                if found != HEAD:
                    await conn.run_sync(_upgrade)
                return found, HEAD
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise UpstreamUnavailable(f"cannot reach the database at {_safe(engine)}: {exc}") from None


async def _current_revision(conn: AsyncConnection) -> str | None:
    if not await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version")):
        return None
    row = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).first()
    return row[0] if row else None


def _upgrade(sync_conn: sa.Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    log.info("applying database migrations")
    command.upgrade(cfg, "head")


def _safe(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)
