"""An llm step's answer shows on its run's status card while it streams, coalesced: the card row (one
row, upserted) is drawn at most once per card interval however many pieces arrive, and the finished
card no longer says the step is writing. The real runtime, and the real openai client against the
fake server streaming a word every 0.05 s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from engine.activities import llm
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.helpers import eventually, finished, workflow
from tests.test_status_cards import ORIGIN, card_of

WORDS = " ".join(f"word{n}" for n in range(40))  # about 2 s of writing
FLOW = "name: note\nsteps:\n  write: {llm: {prompt: tell me everything}}\n"


def writing(card: dict[str, Any]) -> str | None:
    lines = [c for c in card.get("context", []) if "is writing" in c]
    return lines[0] if lines else None


async def test_the_run_card_shows_the_llm_step_writing_then_the_result(
    make_runtime: Callable[..., Any],
) -> None:
    async with FakeOpenAI(chunk_delay=0.05) as fake:
        runtime: Runtime = await make_runtime(
            card_update_interval=0.5, openai_api_key=SecretStr("k"), openai_base_url=fake.base_url
        )
        install(runtime)
        fake.script(Text(WORDS))
        started = await runtime.submit(workflow(FLOW), {}, "alice", meta={"origin": ORIGIN})

        async def partial() -> str | None:
            row = await card_of(runtime, started.run_id)
            line = writing(row.card) if row is not None else None
            return line if line is not None and "word39" not in line else None

        line = await eventually(partial, timeout=15)
        row = await finished(runtime, started.run_id)
        await llm.close_clients()
    assert row.status == "succeeded" and line.startswith("✎ write is writing: word0")
    card = await card_of(runtime, started.run_id)
    assert writing(card.card) is None and card.card["status"] == "succeeded"
    # 41 pieces in about 2 s, drawn at most every 0.5 s: a handful of versions, never one per piece.
    assert card.version <= 10, card.version
