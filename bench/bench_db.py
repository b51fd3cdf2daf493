"""A fresh database for one benchmark figure: a new SQLite file, or a new schema in the local PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import asyncpg

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def fresh_url(kind: str) -> str:
    """A database URL nobody has used yet (``kind`` is sqlite or postgres)."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='sb-bench-')}/bench.db"
    schema = f"bench_{os.getpid()}_{int(time.time() * 1000) % 10_000_000}"

    async def create() -> None:
        conn = await asyncpg.connect(PG.replace("+asyncpg", ""))
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()

    asyncio.run(create())
    return f"{PG}?schema={schema}"


def drop(url: str) -> None:
    """Remove what ``fresh_url`` made: the SQLite file's folder, or the PostgreSQL schema."""
    if url.startswith("sqlite"):
        import shutil
        from pathlib import Path

        shutil.rmtree(Path(url.split(":///", 1)[1]).parent, ignore_errors=True)
        return
    schema = url.rsplit("schema=", 1)[1]

    async def remove() -> None:
        conn = await asyncpg.connect(PG.replace("+asyncpg", ""))
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    asyncio.run(remove())
