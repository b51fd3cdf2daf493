"""The "Rewind to …" button in the console and the dashboard's ↺ undone steps and rerun link, on the real app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.process import App, start_app, stop_app
from tests.helpers import eventually, finished
from tests.test_console_api import Client, card_with_status, console_settings, run_id_of

CHAIN = """
name: chain
permissions: {rollback: ["group:ops"]}
steps:
  build: {run: ["echo", "v1"], checkpoint: built}
  deploy: {needs: [build], run: ["echo", "deployed"], compensate: {run: ["echo", "undeployed"]}}
  verify: {needs: [deploy], run: ["test", "-e", "GATE"]}
"""


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, db_url: str) -> AsyncIterator[App]:
    (workflows_dir / "chain.yaml").write_text(CHAIN.replace("GATE", str(tmp_path / "gate")))
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"database_url": db_url})
    started = await start_app(settings)
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def http(app: App) -> AsyncIterator[Client]:
    async with Client(app.url) as client:
        yield client


async def test_console_rewind_button_and_the_dashboard(app: App, http: Client, tmp_path: Path) -> None:
    run_id = run_id_of(await http.command("/workflow run chain", user="alice"))
    card = await card_with_status(http, run_id, "failed")
    rewind = next(b for b in card["card"]["buttons"] if b["label"] == "Rewind to built")
    assert rewind["action_id"] == f"sb:run:{run_id}:rewind.built" and rewind["confirm"] is not None
    click = {"channel": "ops", "message_id": card["id"], "action_id": rewind["action_id"]}

    refused = await http.post("/api/click", click, user="bob")
    assert refused["message"]["ephemeral"]
    assert refused["message"]["text"].startswith(
        "You may not rewind runs of chain (the 'rollback' permission)"
    )

    (tmp_path / "gate").write_text("open")
    reply = await http.post("/api/click", click, user="alice")
    assert reply["message"]["text"].startswith(f"Rewinding run {run_id} to built")
    await card_with_status(http, run_id, "succeeded")

    async def thread_says_rewound() -> bool:
        return any("Rewound to *built*" in (m.get("text") or "") for m in await http.state())

    await eventually(thread_says_rewound)
    await app.runtime.rollback(run_id, by="console:alice", to="build")
    await card_with_status(http, run_id, "compensated")

    session = await http.session("alice")
    async with session.get(f"/dashboard/runs/{run_id}") as res:
        assert res.status == 200
        page = await res.text()
    row = re.search(r'<tr data-key="deploy".*?</tr>', page, re.DOTALL)
    assert row is not None and "↺ undone" in row.group(0)
    assert "↺ undone" not in re.search(r'<tr data-key="build".*?</tr>', page, re.DOTALL).group(0)

    # The chat commands: a rewind to an unknown checkpoint is refused; a rerun starts a linked run.
    nowhere = await http.command(f"/workflow rewind {run_id} nowhere", user="alice")
    assert "no checkpoint or step is called 'nowhere'" in nowhere["message"]["text"]
    reply = await http.command(f"/workflow rerun {run_id} verify", user="alice")
    assert f"a rerun of run {run_id} from step verify" in reply["message"]["text"]
    new_id = re.search(r"\(run ([0-9a-f]{12})\)", reply["message"]["text"]).group(1)
    assert (await finished(app.runtime, new_id)).status == "succeeded"
    card = await card_with_status(http, new_id, "succeeded")
    assert f"rerun of run {run_id} from step verify" in card["card"]["context"]
    async with session.get(f"/dashboard/runs/{new_id}") as res:
        page = await res.text()
    assert f'<a href="/dashboard/runs/{run_id}">run {run_id}</a> from step verify' in page
    assert re.search(r'<tr data-key="build".*?\(reused\)', page, re.DOTALL)
