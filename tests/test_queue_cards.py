"""A run that waits its turn says so on its Slack status card, and its place moves up with the queue.

The real Bolt app with signed slash commands, the real slack_sdk client against the fake Web API, and the
real runtime on SQLite and PostgreSQL: three prod deploys of one exclusion group, the first held by a gate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.process import start_app, stop_app
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, status_is, workflow
from tests.test_slack import Harness, ephemeral_texts, settings_with, started_run
from tests.test_slack_approvals import keyed


@pytest.fixture
async def slack(tmp_path: Path, workflows_dir: Path, db_url: str) -> AsyncIterator[Harness]:
    """The Slack harness of ``test_slack`` on each database (``db_url``: SQLite, then PostgreSQL)."""
    async with FakeSlack() as fake:
        app = await start_app(settings_with(fake, tmp_path, workflows_dir, database_url=db_url))
        harness = Harness(fake, app, SlackSender(fake, f"{app.url}/slack/events"), workflows_dir)
        try:
            yield harness
        finally:
            await harness.send.close()
            await stop_app(harness.app, grace=0.5, flush=0.5)


def card_of(fake: FakeSlack, run_id: str) -> dict[str, object] | None:
    """The newest state of the run's status card in #ops, once posted."""
    found = keyed(fake, f"sb-card-run:{run_id}")
    return fake.message(*found[0]) if found else None


def says(fake: FakeSlack, run_id: str, text: str) -> bool:
    card = card_of(fake, run_id)
    return card is not None and text in json.dumps(card["blocks"], ensure_ascii=False)


async def test_a_queued_run_shows_its_place_in_line_and_moves_up(slack: Harness, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    workflow(
        f"""
name: deploy
exclusive: "deploy-${{{{ inputs.env }}}}"
inputs:
  env: {{type: string}}
  n: {{type: string}}
steps:
  ship: {{run: ["sh", "-c", "while [ ! -f \\"$1\\" ]; do sleep 0.05; done", "gate", "{gates}/${{{{ inputs.n }}}}"]}}
""",
        slack.workflows,
    )
    fake = slack.fake
    run_ids: list[str] = []
    for n in range(3):
        await slack.send.command(f"run deploy env=prod n={n}")
        run_ids.append(await eventually(lambda: started_run(ephemeral_texts(fake)[len(run_ids) :])))
        await status_is(slack.app.runtime, run_ids[0], "running")
    first, second, third = run_ids
    await eventually(lambda: says(fake, second, "queued: 1st in line for deploy-prod"), 20)
    await eventually(lambda: says(fake, third, "queued: 2nd in line for deploy-prod"), 20)
    assert not says(fake, first, "queued")

    (gates / "0").write_text("go")  # the first deploy ends: the second runs and the third moves up
    await status_is(slack.app.runtime, first, "succeeded", timeout=30)
    await eventually(lambda: says(fake, third, "queued: 1st in line for deploy-prod"), 20)
    await eventually(lambda: not says(fake, second, "queued"), 20)
    (gates / "1").write_text("go")
    (gates / "2").write_text("go")
    for run_id in (second, third):
        await status_is(slack.app.runtime, run_id, "succeeded", timeout=30)
    await eventually(lambda: not says(fake, third, "queued") and says(fake, third, "Succeeded"), 20)


def test_places_read_as_ordinals_and_the_card_says_why_it_waits() -> None:
    from bot.runtime.queue_cards import CAPACITY, in_line, ordinal
    from cards.run_card import RunView, run_card

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd", "111th",
    ]  # fmt: skip
    card = run_card(RunView("r1", "deploy", "pending", "@bob", queued=in_line(3, "deploy-prod")))
    assert (card.status, card.text) == (
        "queued: 3rd in line for deploy-prod",
        "Queued: 3rd in line for deploy-prod.",
    )
    card = run_card(RunView("r1", "deploy", "pending", "@bob", queued=CAPACITY))
    assert card.status == "queued: waiting for capacity"
    assert run_card(RunView("r1", "deploy", "running", "@bob", queued=CAPACITY)).status == "running"
