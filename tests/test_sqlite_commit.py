"""The journal's stdlib-sqlite3 commit stores exactly what SQLAlchemy's own path stores, and keeps its rules."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.storage import redaction
from bot.storage.database import create_engine, migrate
from bot.storage.journal import Batch, Journal, LeaseLost
from bot.storage.runs import RunStore
from bot.storage.tables import step_processes

SECRET = "hunter2-is-not-a-password-9f3a"

RUN = {
    "id": "r1",
    "workflow": "deploy",
    "digest": "d" * 64,
    "parent_run_id": None,
    "parent_step": None,
    "status": "running",
    "inputs": {"env": "prod", "note": "naïve ✓", "count": 3, "flag": True, "none": None},
    "started_by": "alice",
    "meta": {},
    "cancel_requested": False,
    "created_at": 1.5,
    "updated_at": 1.5,
    "lease_owner": "me",
    "lease_until": 1e12,
}


def step(status: str, outputs: Any, attempt: int = 1, error: str | None = None) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "key": "build",
        "step_id": "build",
        "idx": None,
        "status": status,
        "attempt": attempt,
        "started_at": 2,
        "finished_at": None if status == "running" else 3.25,
        "outputs": outputs,
        "error": error,
    }


def batches(store: RunStore) -> list[Batch]:
    first = Batch()
    first.add(store.insert_run, dict(RUN))
    first.add(store.upsert_step, [step("running", None)])
    first.add(
        store.insert_event,
        [
            {"run_id": "r1", "seq": 1, "type": "run_started", "step_key": None, "data": {}, "at": 1.5},
            {
                "run_id": "r1",
                "seq": 2,
                "type": "step_started",
                "step_key": "build",
                "data": {"attempt": 1},
                "at": 2,
            },
        ],
    )
    second = Batch(held=["r1"])
    second.add(
        store.upsert_step, [step("failed", {"log": f"token {SECRET} leaked", "n": [1, 2.5]}, 1, "boom")]
    )
    second.add(
        store.insert_event,
        {"run_id": "r1", "seq": 3, "type": "note", "step_key": "build", "data": "a plain string", "at": 3},
    )
    third = Batch(held=["r1"])
    third.add(store.upsert_step, [step("succeeded", {"version": "1.2.3"}, 2)])
    third.add(
        store.update_run,
        {
            "_id": "r1",
            **{
                k: None
                for k in (
                    "outputs",
                    "error",
                    "failed_step",
                    "rollback_to",
                    "rewind_to",
                    "finished_at",
                    "lease_owner",
                    "lease_until",
                )
            },
            "status": "succeeded",
            "cancel_requested": False,
            "updated_at": 4,
        },
    )
    return [first, second, third]


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        out = {}
        for table in ("runs", "step_runs", "events"):
            cols = [
                r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "id" or table == "runs"
            ]
            typed = ", ".join(f"{c}, typeof({c})" for c in cols)
            out[table] = conn.execute(f"SELECT {typed} FROM {table} ORDER BY 1, 3").fetchall()
        return out


async def write_all(path: Path, sqlite3_path: bool) -> Journal:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    store = RunStore(engine)
    journal = Journal(engine, sqlite3=sqlite3_path)
    journal.owner = "me"
    journal.start()
    try:
        for batch in batches(store):
            await journal.write(batch)
    finally:
        await journal.close()
        await engine.dispose()
    return journal


async def test_the_sqlite3_path_stores_the_same_rows_and_types_as_sqlalchemy(tmp_path: Path) -> None:
    redaction.remember([SECRET])
    fast = await write_all(tmp_path / "fast.db", sqlite3_path=True)
    await write_all(tmp_path / "reference.db", sqlite3_path=False)
    assert fast.unfit == 0  # the hot statements all went the sqlite3 way
    stored = dump(tmp_path / "fast.db")
    assert stored == dump(tmp_path / "reference.db")
    assert SECRET not in repr(stored)  # masked on this path too
    steps = stored["step_runs"]
    assert len(steps) == 1 and "1.2.3" in repr(steps[0])  # the upsert updated the one row


async def test_a_commit_for_a_run_whose_lease_is_gone_stores_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    await migrate(engine)
    store = RunStore(engine)
    journal = Journal(engine)
    journal.owner = "me"
    journal.start()
    try:
        await journal.write(batches(store)[0])
        journal.owner = "someone-else"
        with pytest.raises(LeaseLost):
            await journal.write(batches(store)[1])
    finally:
        await journal.close()
        await engine.dispose()
    stored = dump(tmp_path / "x.db")
    assert len(stored["events"]) == 2  # the refused batch's event is not there...
    assert "running" in stored["step_runs"][0] and "boom" not in repr(stored)  # ...nor its step update


async def test_a_write_lock_held_elsewhere_is_waited_for_on_the_writer_thread(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    store = RunStore(engine)
    journal = Journal(engine)
    journal.owner = "me"
    journal.start()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process (a CLI client) writing
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        await journal.write(batches(store)[0])
        assert journal.inline_busy >= 1  # it did not block the event loop waiting for the lock
    finally:
        other.close()
        await journal.close()
        await engine.dispose()
    assert len(dump(path)["events"]) == 2


async def test_a_statement_it_cannot_bind_goes_through_sqlalchemy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    await migrate(engine)
    journal = Journal(engine)
    journal.start()
    batch = Batch()
    batch.add(sa.delete(step_processes).where(step_processes.c.run_id.in_(["a", "b"])))  # an expanding IN
    try:
        await journal.write(batch)
    finally:
        await journal.close()
        await engine.dispose()
    assert journal.unfit >= 1
