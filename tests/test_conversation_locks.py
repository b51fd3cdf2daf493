"""The per-conversation lock: Redis and in-process pass the same tests (Redis on 127.0.0.1:6379 must be up)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.conversations.locks import LocalLocks, Locks, RedisLocks
from bot.owners import new_owner
from bot.storage.conversations.states import State
from bot.storage.conversations.tables import conversations
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import REDIS_URL, eventually


@pytest.fixture(params=["local", "redis"])
async def locks(request: pytest.FixtureRequest) -> AsyncIterator[Locks]:
    made: Locks = (
        LocalLocks()
        if request.param == "local"
        else RedisLocks(Redis.from_url(REDIS_URL), prefix=f"sbtest:{secrets.token_hex(4)}:", ttl=10, wait=10)
    )
    yield made
    await made.close()


async def test_one_holder_at_a_time(locks: Locks) -> None:
    inside = 0
    most = 0

    async def work() -> None:
        nonlocal inside, most
        async with locks.hold("c1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(work() for _ in range(20)))
    assert most == 1


async def test_different_conversations_do_not_wait_for_each_other(locks: Locks) -> None:
    async with locks.hold("a"):
        async with asyncio.timeout(30):  # a hang guard, not a timing: waiting for "a" here would deadlock
            async with locks.hold("b"):
                pass


async def test_a_failing_holder_releases_the_lock(locks: Locks) -> None:
    with pytest.raises(RuntimeError):
        async with locks.hold("c2"):
            raise RuntimeError("boom")
    async with asyncio.timeout(30):  # a hang guard, not a timing: a lock left held would never be free
        async with locks.hold("c2"):
            pass


async def _replies(env: Env, n: int) -> bool:
    return len(await env.texts("@alice")) >= n


@pytest.mark.parametrize("redis", [False, True])
async def test_two_processes_on_one_conversation_answer_once(
    make_runtime: Callable[..., Any], redis: bool
) -> None:
    """Two bot processes both receive the user's message (a retried delivery): one turn, one reply."""
    async with FakeOpenAI() as fake:
        fake.script(Text("one answer", delay=0.2))
        values: dict[str, Any] = {"openai_api_key": "k", "openai_base_url": fake.base_url, "debounce": 0.0}
        if redis:
            values["redis_url"] = REDIS_URL
        envs: list[Env] = [await make_env(await make_runtime(**values)) for _ in range(2)]
        try:
            alice = person("alice")
            await envs[0].service.user_said(said(alice, "hi", key="k1"))
            # The second process saw the same message: it schedules a turn too.
            opened, _ = await envs[1].service.store.open_for(said(alice, "hi"), 0.0)
            envs[1].service.schedule_turn(opened.id, delay=0.0)
            await eventually(lambda: envs[0].texts("@alice"))
            # A later message as the marker: once its reply is out, a second turn for "hi" would be too.
            await envs[0].service.user_said(said(alice, "marker", key="k2"))
            await eventually(lambda: _replies(envs[0], 2), message="the reply to the marker message")
            assert await envs[0].texts("@alice") == ["one answer", "marker"]
            assert len(fake.completions) == 2
        finally:
            for env in envs:
                await env.service.stop()


async def _left_mid_turn(env: Env, owner: str, until: float) -> str:
    """A conversation whose message a turn of ``owner`` took and never answered (its process stopped)."""
    conv, _ = await env.service.store.open_for(said(person("alice"), "hi"), 0.0)
    async with env.engine.begin() as conn:
        await env.service.store.add_message(conn, conv.id, "user", "hi", time.time(), person("alice"), turn=1)
        await conn.execute(
            conversations.update()
            .where(conversations.c.id == conv.id)
            .values(state=State.AI_PROCESSING.value, turn_owner=owner, turn_until=until)
        )
    return conv.id


def _owner_of_a_dead_process() -> str:
    """The owner id a process wrote before it exited (and was reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "from bot.owners import new_owner; print(new_owner())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


async def test_a_turn_a_dead_process_took_is_answered_at_start(make_runtime: Callable[..., Any]) -> None:
    """The process running a turn was killed: the next process to start answers it, once."""
    async with FakeOpenAI() as fake:
        fake.script(Text("answered after the crash"))
        values: dict[str, Any] = {"openai_api_key": "k", "openai_base_url": fake.base_url, "debounce": 0.0}
        first = await make_env(await make_runtime(**values))
        conv_id = await _left_mid_turn(first, _owner_of_a_dead_process(), time.time() + 3600)
        await first.service.stop()
        second = await make_env(await make_runtime(**values))
        try:
            await eventually(
                lambda: second.texts("@alice"), message="the answer to the message left mid-turn"
            )
            assert await second.texts("@alice") == ["answered after the crash"]
            assert len(fake.completions) == 1
            assert (await second.get(conv_id)).turns == 1
        finally:
            await second.service.stop()


async def test_a_turn_a_live_process_holds_is_left_to_it_until_its_claim_lapses(
    make_runtime: Callable[..., Any],
) -> None:
    """Another live process claimed the turn: this one waits for the claim to lapse, then answers once."""
    async with FakeOpenAI() as fake:
        fake.script(Text("answered after the claim lapsed"))
        values: dict[str, Any] = {"openai_api_key": "k", "openai_base_url": fake.base_url, "debounce": 0.0}
        first = await make_env(await make_runtime(**values))
        lapses = time.time() + 1.0
        conv_id = await _left_mid_turn(first, new_owner(), lapses)  # a live process (this one's pid)
        await first.service.stop()
        second = await make_env(await make_runtime(**values))
        try:
            await eventually(lambda: second.texts("@alice"), message="the answer once the claim lapsed")
            assert len(fake.completions) == 1
            replies = [m for m in await second.service.store.messages(conv_id) if m.role == "assistant"]
            assert [m.text for m in replies] == ["answered after the claim lapsed"]
            assert replies[0].at >= lapses  # taken only once the other process's claim had lapsed
        finally:
            await second.service.stop()


async def test_a_stop_during_a_turn_ends_it_quietly_and_the_message_waits_for_the_next_start(
    make_runtime: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeOpenAI() as fake:
        fake.script(Text("too late", delay=30.0), Text("answered after the restart"))
        values: dict[str, Any] = {"openai_api_key": "k", "openai_base_url": fake.base_url, "debounce": 0.0}
        env = await make_env(await make_runtime(**values))
        conv = await env.service.user_said(said(person("alice"), "hi", key="k1"))
        assert conv is not None
        await eventually(lambda: fake.completions, message="the turn to reach the assistant")
        await env.service.stop()  # the turn is past its quiet window, mid-call
        errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
        assert errors == [], [r.getMessage() for r in errors]
        assert await env.texts("@alice") == []

        again = await make_env(await make_runtime(**values))
        try:
            await again.service.start()  # what the next process does at start
            await eventually(lambda: again.texts("@alice"))
            assert await again.texts("@alice") == ["answered after the restart"]
        finally:
            await again.service.stop()
