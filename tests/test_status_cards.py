"""A chat run's status card is drawn from the live state at most once per card interval, not on every commit.

Its first commit, a change of status, a thread reply and the runtime's stop draw it at once; a run that goes
quiet in between gets its card drawn when the interval is up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage.tables import chat_cards, chat_posts
from tests.helpers import eventually, finished, workflow

ORIGIN = {"platform": "console", "channel": "#ops", "thread": None, "channel_name": "ops"}


def chain(n: int, last: str = "") -> str:
    lines = ["name: chain", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f'  s{i}: {{run: ["true"]{needs}}}')
    if last:
        lines.append(f"  last: {{needs: [s{n - 1}], {last}}}")
    return "\n".join(lines) + "\n"


async def card_of(runtime: Runtime, run_id: str) -> Any:
    query = sa.select(chat_cards.c.version, chat_cards.c.card).where(chat_cards.c.key == f"run:{run_id}")
    async with runtime.store.engine.connect() as conn:
        return (await conn.execute(query)).first()


def icons(card: dict[str, Any]) -> dict[str, str]:
    return {line["name"]: line["icon"] for line in card["steps"]}


async def test_a_long_chain_draws_its_card_a_few_times_and_ends_with_every_step(
    make_runtime: Callable[..., Any],
) -> None:
    runtime: Runtime = await make_runtime(card_update_interval=60.0)
    install(runtime)
    started = await runtime.submit(workflow(chain(30)), {}, "alice", meta={"origin": ORIGIN})
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"
    card = await card_of(runtime, started.run_id)
    # Drawn at the first commit and at the end (its status changed), not on each of its 60-odd commits.
    assert card.version <= 3, card.version
    assert card.card["status"] == "succeeded"
    assert set(icons(card.card).values()) == {"✓"} and len(card.card["steps"]) == 30
    async with runtime.store.engine.connect() as conn:
        posts = (await conn.execute(sa.select(chat_posts.c.parent_key, chat_posts.c.card))).all()
    assert [(p.parent_key, p.card["title"]) for p in posts] == [
        (f"run:{started.run_id}", "Run succeeded"),
        (f"run:{started.run_id}", "Steps graph"),  # the DAG's picture, after the outcome
    ]


async def test_a_run_that_goes_quiet_has_its_card_drawn_when_the_interval_is_up(
    make_runtime: Callable[..., Any], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    runtime: Runtime = await make_runtime(card_update_interval=0.2)
    install(runtime)
    text = chain(5, last=f'run: ["sh", "-c", "while [ ! -e {gate} ]; do sleep 0.05; done"]')
    started = await runtime.submit(workflow(text), {}, "alice", meta={"origin": ORIGIN})

    async def last_step_running() -> bool:
        card = await card_of(runtime, started.run_id)
        return card is not None and icons(card.card).get("last") == "⏳" and icons(card.card)["s4"] == "✓"

    await eventually(last_step_running, message="the card showing the last step running")
    gate.write_text("go")
    assert (await finished(runtime, started.run_id)).status == "succeeded"
    card = await card_of(runtime, started.run_id)
    assert card.card["status"] == "succeeded" and icons(card.card)["last"] == "✓"


async def test_stopping_the_runtime_draws_the_cards_of_its_running_runs(
    make_runtime: Callable[..., Any], tmp_path: Path
) -> None:
    runtime: Runtime = await make_runtime(card_update_interval=3600.0)
    install(runtime)
    text = chain(5, last='run: ["sleep", "30"]')
    started = await runtime.submit(workflow(text), {}, "alice", meta={"origin": ORIGIN})

    async def last_started() -> bool:
        steps = {s.key: s.status for s in await runtime.store.step_rows(started.run_id)}
        return steps.get("last") == "running"

    await eventually(last_started, message="the last step running")
    await runtime.stop(grace=0.1)
    card = await card_of(runtime, started.run_id)
    assert icons(card.card)["s4"] == "✓" and icons(card.card)["last"] == "⏳", card.card["steps"]


async def test_every_commit_draws_the_card_with_no_interval(make_runtime: Callable[..., Any]) -> None:
    runtime: Runtime = await make_runtime(card_update_interval=0.0)
    install(runtime)
    started = await runtime.submit(workflow(chain(5)), {}, "alice", meta={"origin": ORIGIN})
    await finished(runtime, started.run_id)
    card = await card_of(runtime, started.run_id)
    assert card.version >= 5, card.version  # drawn with each step's commits, as the outbox may send each
