"""Shared fixtures: a real database per test (SQLite file, or a PostgreSQL schema) and a started runtime."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.config import Settings
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore

PG_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    base = PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}?schema={schema}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def workflows_dir(tmp_path: Path) -> Path:
    """A workflows folder for the test, with the example actions package available."""
    folder = tmp_path / "workflows"
    folder.mkdir()
    return folder


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def settings_for(db_url: str, workflows_dir: Path) -> Callable[..., Settings]:
    """Settings pointing at the test's database and workflows folder."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "workflows_dir": workflows_dir,
            "poll_interval": 0.05,
            "kill_grace": 0.5,
            "lease_seconds": 30.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def make_runtime(settings_for: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Start runtimes on the test database; every one is stopped at the end."""
    started: list[Runtime] = []
    engines = []

    async def make(
        clock: Callable[[], float] | None = None, resume: bool = True, **overrides: Any
    ) -> Runtime:
        settings = settings_for(**overrides)
        engine = create_engine(settings.database_url)
        engines.append(engine)
        await migrate(engine)
        runtime = (
            Runtime(settings, RunStore(engine), clock=clock) if clock else Runtime(settings, RunStore(engine))
        )
        await runtime.start(resume=resume)
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        await runtime.stop(grace=1.0)
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def runtime(make_runtime: Callable[..., Any]) -> Runtime:
    """One started runtime."""
    return await make_runtime()  # type: ignore[no-any-return]
