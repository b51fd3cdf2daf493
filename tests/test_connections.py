"""Connections: pool settings and the name PostgreSQL shows, pre-ping after a dropped connection, PgBouncer
in transaction mode, a database outage the bot rides out, and SQLite's one-bot-per-file rule with no
"database is locked" reaching anyone. Real PostgreSQL, PgBouncer (when installed) and SQLite."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.runtime.runtime import Runtime
from bot.storage.database import engine_for, migrate
from bot.storage.runs import RunStore
from tests.bot_process import Bot, cli, free_port
from tests.conftest import PG_DSN
from tests.fakes.tcp_proxy import TcpProxy
from tests.helpers import eventually, finished, workflow

STEPS = """
name: steps
concurrency: 8
steps:
  fan:
    for_each: "${{ fromJSON('[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]') }}"
    run: ["true"]
  pause: {needs: [fan], wait: 0s}
  done: {needs: [pause], run: ["true"]}
"""


# These settings and failures exist only on PostgreSQL: the tests take its database alone.
pg_only = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


async def started(settings: Settings) -> Runtime:
    engine = engine_for(settings)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine))
    await runtime.start()
    return runtime


async def stopped(runtime: Runtime) -> None:
    await runtime.stop(grace=0.5)
    await runtime.store.engine.dispose()


# -- PostgreSQL -----------------------------------------------------------------------------------------


@pg_only
async def test_the_pool_follows_the_settings_and_postgres_shows_the_application_name(
    db_url: str, settings_for: Callable[..., Settings]
) -> None:
    name = f"sb-test-{secrets.token_hex(4)}"
    settings = settings_for(db_application_name=name, db_pool_size=2, db_max_overflow=1, db_pool_timeout=0.5)
    engine = engine_for(settings)
    try:
        held = [await engine.connect() for _ in range(3)]  # the pool's 2 and its 1 overflow
        for conn in held:
            await conn.execute(sa.text("SELECT 1"))
        with pytest.raises(sa.exc.TimeoutError, match="QueuePool limit of size 2 overflow 1"):
            await engine.connect()
        admin = await asyncpg.connect(PG_DSN)
        try:
            seen = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
            )
        finally:
            await admin.close()
        assert seen == 3
        for conn in held:
            await conn.close()
    finally:
        await engine.dispose()


@pg_only
async def test_the_first_query_after_the_server_dropped_the_connection_succeeds(
    db_url: str, settings_for: Callable[..., Settings]
) -> None:
    name = f"sb-test-{secrets.token_hex(4)}"
    engine = engine_for(settings_for(db_application_name=name))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
        admin = await asyncpg.connect(PG_DSN)
        try:  # a restart, a failover or an idle timeout: the pooled connection is dead
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                name,
            )
        finally:
            await admin.close()
        assert killed == 1
        async with engine.connect() as conn:  # pre-ping notices, and reconnects
            assert (await conn.execute(sa.text("SELECT 2"))).scalar() == 2
    finally:
        await engine.dispose()


@pg_only
async def test_a_run_started_after_the_server_dropped_every_connection_just_works(
    db_url: str, settings_for: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    name = f"sb-test-{secrets.token_hex(4)}"
    runtime = await started(settings_for(db_application_name=name))
    try:
        first = await runtime.submit(workflow(STEPS), {}, started_by="test")
        assert (await finished(runtime, first.run_id)).status == "succeeded"
        admin = await asyncpg.connect(PG_DSN)
        try:  # the writer's own connection included
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
            )
        finally:
            await admin.close()
        second = await runtime.submit(workflow(STEPS), {}, started_by="test")
        assert (await finished(runtime, second.run_id)).status == "succeeded"
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    finally:
        await stopped(runtime)


@pg_only
async def test_a_bot_that_loses_its_database_stops_driving_its_runs_and_picks_them_up_again(
    db_url: str, settings_for: Callable[..., Settings], workflows_dir: Path, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    log = tmp_path / "log"
    line = f"echo start-$SWITCHBOARD_ATTEMPT >> {log}; [ $SWITCHBOARD_ATTEMPT = 1 ] && sleep 30; echo end >> {log}"
    loaded = workflow(f'name: hang\nsteps:\n  a: {{run: ["sh", "-c", "{line}"]}}\n')
    url = db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    runtime = await started(settings_for(database_url=url, lease_seconds=3.0))
    try:
        run = await runtime.submit(loaded, {}, started_by="test")
        await eventually(
            lambda: "start-1" in (log.read_text() if log.exists() else ""), 20, "step a to start"
        )
        await proxy.cut()
        # Its leases lapse before it could renew them: it lets the run go (and kills the step's command)
        # rather than drive it while another process may take it over.
        await eventually(lambda: run.run_id not in runtime.live, 20, "the bot to let the run go")
        await proxy.start()
        row = await finished(runtime, run.run_id, timeout=30)
        assert row.status == "succeeded"
        assert log.read_text().split() == ["start-1", "start-2", "end"]
    finally:
        await stopped(runtime)
        await proxy.close()


# -- PgBouncer in transaction mode ---------------------------------------------------------------------


@pytest.fixture
async def pgbouncer() -> AsyncIterator[str]:
    """PgBouncer in transaction mode in front of a database of its own; yields its URL."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if binary is None:
        pytest.fail("PgBouncer is not installed: `bash tests/run` installs Debian's pgbouncer package")
    dbname = f"sb_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
{dbname} = host=127.0.0.1 port=5432 dbname={dbname}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 2
""")
    for path in folder.iterdir():
        path.chmod(0o644)
    user = ["-u", "postgres"] if os.geteuid() == 0 else []  # PgBouncer refuses to run as root
    proc = subprocess.Popen([binary, *user, str(folder / "pgbouncer.ini")], stderr=subprocess.PIPE, text=True)

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await eventually(listening, 20, "PgBouncer to listen")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
        await admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        await admin.close()


async def test_runs_work_behind_pgbouncer_in_transaction_mode(
    pgbouncer: str, settings_for: Callable[..., Settings], workflows_dir: Path
) -> None:
    runtime = await started(settings_for(database_url=pgbouncer, db_pgbouncer=True))
    try:
        runs = [await runtime.submit(workflow(STEPS), {}, started_by="test") for _ in range(5)]
        for run in runs:
            row = await finished(runtime, run.run_id, timeout=60)
            assert row.status == "succeeded", row.error
    finally:
        await stopped(runtime)


# -- SQLite -------------------------------------------------------------------------------------------------


async def test_a_second_bot_on_one_sqlite_file_is_refused_with_a_pointer_to_postgres(
    tmp_path: Path, workflows_dir: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    first = Bot(url, workflows_dir)
    await first.start()
    try:
        second = Bot(url, workflows_dir)
        proc = second.spawn()
        assert proc.wait(timeout=60) != 0
        said = second.output()
        second.close()
        assert "already using the SQLite database" in said and "PostgreSQL" in said, said
        assert "Traceback" not in said
        status = cli(url, workflows_dir, "workflow", "status")  # CLI commands may still use the file
        assert status.returncode == 0, status.stderr
        assert first.terminate() == 0
        again = Bot(url, workflows_dir)
        await again.start()  # the lock went with the first bot
        again.terminate()
        again.close()
    finally:
        first.close()


async def test_clients_writing_one_sqlite_file_together_never_see_database_is_locked(
    tmp_path: Path, workflows_dir: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    workflow(STEPS, workflows_dir)
    bot = Bot(url, workflows_dir)
    await bot.start()
    try:
        clients = [asyncio.to_thread(cli, url, workflows_dir, "workflow", "run", "steps") for _ in range(4)]
        for done in await asyncio.gather(*clients):
            assert done.returncode == 0, done.stdout + done.stderr
            assert "locked" not in done.stdout + done.stderr
    finally:
        bot.terminate()
        assert "locked" not in bot.output()
        bot.close()
