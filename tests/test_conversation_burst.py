"""A burst of conversations on PostgreSQL with a pool far smaller than the burst: no message fails.

Before, every message of a burst asked the pool for a connection at once, and those that waited longer
than the pool's timeout failed ("QueuePool limit ... reached"): 498 of 1,000 in the issue's measurement.
Now the intake stores at most half a pool's worth of messages at once and SWITCHBOARD_MAX_TURNS turns run
at once; the rest wait their turn in order. Here 300 users write at once to a process with 4
connections and a 2 s pool timeout, through the real runtime, the real openai client against the fake
OpenAI server, and real PostgreSQL (the bench does 1,000 with the default pool: bench/conversations.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.runtime.runtime import Runtime
from bot.storage.conversations.tables import conversation_messages
from bot.storage.database import engine_for, migrate
from bot.storage.runs import RunStore
from tests.conversation_env import make_env, person, said
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import eventually

USERS = 300


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_burst_bigger_than_the_pool_answers_every_message(
    settings_for: Callable[..., Settings], fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        debounce=0.0,
        llm_retries=0,
        llm_timeout=30.0,
        openai_api_key="k",
        openai_base_url=fake.base_url,
        db_pool_size=4,
        db_max_overflow=0,
        db_pool_timeout=2.0,
        max_turns=2,
    )
    engine = engine_for(settings)
    await migrate(engine)
    runtime = Runtime(settings, RunStore(engine))
    await runtime.start(resume=False)
    env = await make_env(runtime)
    try:
        results: list[Any] = await asyncio.gather(
            *(env.service.user_said(said(person(f"u{i}"), f"hi from u{i}")) for i in range(USERS)),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed == [], failed[:3]
        assert all(r is not None for r in results)

        async def answered() -> int:
            query = sa.select(sa.func.count()).where(conversation_messages.c.role == "assistant")
            async with engine.connect() as conn:
                return int((await conn.execute(query)).scalar_one())

        async def all_answered() -> bool:
            return await answered() >= USERS

        await eventually(all_answered, 240, "every message to be answered")
        assert "QueuePool limit" not in caplog.text and "turn failed" not in caplog.text
    finally:
        await env.service.stop()
        await runtime.stop(grace=0.5)
        await engine.dispose()
