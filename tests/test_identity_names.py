"""One person, one spelling: the CLI's ``--as alice`` and the console's alice are the same ``console:alice``,
and text names them ``@alice`` everywhere (cards, CLI output, approval outcomes).

The CLI runs as a subprocess of the real entry point, the console is the real app on port 0, both on one
SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.identity import canonical, shown
from bot.process import App, start_app, stop_app
from cards.mentions import plain, resolve
from tests.test_cli import cli, environment, run_id
from tests.test_console_api import Client, console_settings, run_id_of, write_workflows


def test_every_spelling_of_a_console_user_is_one_ref() -> None:
    spellings = ["alice", " alice ", "@alice", "user:alice", "console:alice"]
    assert {canonical(s) for s in spellings} == {"console:alice"}
    for ref in (
        "slack:U024BE7LH",
        "discord:80351110224678912",
        "token:deploybot",
        "webhook:gh",
        "schedule:nightly",
    ):
        assert canonical(ref) == ref


def test_text_names_people_and_triggers() -> None:
    assert shown("console:alice") == "@alice"
    assert shown("slack:U024BE7LH", {"slack:U024BE7LH": "Alice Liddell"}) == "@Alice Liddell"
    assert shown("slack:U024BE7LH") == "@U024BE7LH"  # no name known: the id, still with "@"
    # Slack and Discord draw their own users' mentions; anywhere else the marker reads "@name".
    assert resolve(shown("slack:U024BE7LH", on="slack"), "slack") == "<@U024BE7LH>"
    assert resolve(shown("discord:80351", {"discord:80351": "Bob"}, on="discord"), "discord") == "<@80351>"
    assert plain(shown("discord:80351", {"discord:80351": "Bob"}, on="discord")) == "@Bob"
    assert shown("discord:8035", {"discord:8035": "Bob"}, on="slack") == "@Bob"  # not Slack's user
    assert shown("webhook:github") == "webhook github"
    assert shown("schedule:nightly") == "schedule nightly"
    assert shown("token:deploybot") == "@deploybot"
    assert shown("parent run") == "parent run"


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def test_cli_and_console_name_alice_alike(app: App, tmp_path: Path, workflows_dir: Path) -> None:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'console.db'}", workflows_dir)
    ran = await cli(env, "workflow", "run", "deploy", "-i", "service=api", "--as", "alice")
    assert ran.code == 0, ran.out
    from_cli = run_id(ran.out)
    again = await cli(env, "workflow", "run", "deploy", "-i", "service=db", "--as", "@alice")
    assert again.code == 0, again.out

    async with Client(app.url) as http:
        from_console = run_id_of(await http.command("/workflow run deploy service=web"))
        mine = await http.command("/workflow status")  # the console's alice sees the CLI's alice's runs
        text = mine["message"]["text"]
        assert from_cli in text and run_id(again.out) in text and from_console in text, text
        card = await http.command(f"/workflow status {from_cli}")
        fields = {f["label"]: f["value"] for f in card["message"]["card"]["fields"]}
        assert fields["Started by"] == "@alice", fields

    stored = {row.id: row.started_by for row in await app.runtime.store.list_runs(limit=10)}
    assert stored[from_cli] == stored[from_console] == "console:alice", stored
    listed = await cli(env, "workflow", "status")
    assert listed.code == 0, listed.out
    lines = [line for line in listed.out.splitlines() if line.startswith((from_cli, from_console))]
    assert len(lines) == 2 and all(line.endswith("by @alice") for line in lines), listed.out


GATED = """\
name: gated
permissions:
  run: ["group:oncall"]
steps:
  check: {run: ["false"]}
"""


async def test_retry_as_a_console_user_brings_their_groups(db_url: str, workflows_dir: Path) -> None:
    (workflows_dir / "gated.yaml").write_text(GATED)
    env = environment(db_url, workflows_dir, SWITCHBOARD_CONSOLE_USERS='{"frank": ["oncall"], "erin": []}')
    failed = await cli(env, "workflow", "run", "gated", "--as", "dana")
    assert failed.code == 1, failed.out
    rid = run_id(failed.out)
    outsider = await cli(env, "workflow", "retry", rid, "--as", "erin")  # first: frank's retry starts it
    member = await cli(env, "workflow", "retry", rid, "--as", "frank")  # no --group: his console groups count
    assert "You may not run runs of gated" in outsider.out, outsider.out
    assert f"retrying the failed steps of run {rid}" in member.out, member.out
