"""A run's DAG in chat: the status card links to its dashboard page, and the thread gets a picture of the
DAG at the end of the run and on `/workflow status RUN`: a file upload on Slack (files_upload_v2's flow
against the fake Web API), an attachment on Discord, an inline image in the console."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from bot.process import start_app, stop_app
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import Json
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, finished, workflow
from tests.test_console import browser
from tests.test_console_api import Client, console_settings
from tests.test_discord import apps, db_url, fake
from tests.test_slack import ephemeral_texts, settings_with, started_run

__all__ = ["apps", "browser", "db_url", "fake"]  # fixtures of test_discord and test_console, used by name

PNG = b"\x89PNG\r\n\x1a\n"
PUBLIC = "https://switchboard.example.com"
PAIR = """
name: pair
steps:
  build: {run: ["python3", "-c", "print('built')"]}
  ship: {run: ["python3", "-c", "print('shipped')"], needs: [build]}
"""


async def test_slack_gets_the_link_and_an_uploaded_picture_in_the_thread(
    tmp_path: Path, workflows_dir: Path
) -> None:
    workflow(PAIR, workflows_dir)
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        app = await start_app(settings_with(fake, tmp_path, workflows_dir, public_url=PUBLIC))
        send = SlackSender(fake, f"{app.url}/slack/events")
        try:
            await send.command("run pair")
            run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
            assert (await finished(app.runtime, run_id)).status == "succeeded"
            card = (await eventually(lambda: fake.delivered("chat.postMessage")))[0]
            ts = card.answer["ts"]
            link = f"{PUBLIC}/dashboard/runs/{run_id}"
            await eventually(lambda: link in str(fake.message("C0OPS", ts)["blocks"]))

            done = await eventually(lambda: fake.delivered("files.completeUploadExternal"))
            (asked,) = fake.delivered("files.getUploadURLExternal")
            assert asked.params["filename"] == f"dag-{run_id}.png"
            assert done[0].params["channel_id"] == "C0OPS" and done[0].params["thread_ts"] == ts
            assert link in done[0].params["initial_comment"]
            (upload,) = fake.files.values()
            assert upload["data"].startswith(PNG) and len(upload["data"]) == upload["length"]
            assert upload["title"] == "Steps graph" and upload["thread_ts"] == ts

            # /workflow status RUN: the card (with its link) to the asker, one more picture in the thread.
            await send.command(f"status {run_id[:8]}")
            await eventually(lambda: len(fake.delivered("files.completeUploadExternal")) == 2)
            assert any(link in str(e.get("blocks")) for e in fake.ephemerals)
            assert all(f["data"].startswith(PNG) and f["thread_ts"] == ts for f in fake.files.values())
        finally:
            await send.close()
            await stop_app(app, grace=0.5, flush=0.5)


def decoded(data_url: str) -> bytes:
    return base64.b64decode(data_url.removeprefix("data:image/png;base64,"))


async def test_the_console_shows_the_picture_inline_in_the_thread(
    tmp_path: Path, workflows_dir: Path
) -> None:
    workflow(PAIR, workflows_dir)
    app = await start_app(console_settings(tmp_path, workflows_dir))
    try:
        async with Client(app.url) as http:

            async def pictures() -> list[dict[str, Any]]:
                return [m for m in await http.state() if m["card"] and m["card"].get("image")]

            await http.command("/workflow run pair")
            run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
            assert (await finished(app.runtime, run_id)).status == "succeeded"
            (shown,) = await eventually(pictures)
            assert shown["channel"] == "ops" and shown["thread_id"]  # in the run card's thread
            found = re.search(
                r'<img class="card__image" src="(data:image/png;base64,[^"]+)" alt="([^"]+)">', shown["html"]
            )
            assert found and decoded(found.group(1)).startswith(PNG)
            assert found.group(2) == f"Steps graph of pair run {run_id}: 2 succeeded"
            assert "Dashboard:" not in str(shown["card"])  # no public address set: no link

            await http.command(f"/workflow status {run_id}")
            again = await eventually(lambda: _at_least(pictures, 2))
            assert {m["thread_id"] for m in again} == {shown["thread_id"]}
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def _at_least(probe: Any, count: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await probe()
    return found if len(found) >= count else None


async def test_discord_gets_the_picture_as_an_attachment_in_the_thread(
    fake: FakeDiscord, apps: Any, workflows_dir: Path
) -> None:
    workflow(PAIR, workflows_dir)
    app = await apps[0](public_url=PUBLIC)
    cmd = await fake.slash("run", name="pair", inputs="")
    assert "Started pair" in (await fake.followup(cmd))["content"]
    [run] = await app.runtime.store.list_runs()
    assert (await finished(app.runtime, run.id)).status == "succeeded"
    [card] = fake.channel_messages(p.OPS)
    link = f"{PUBLIC}/dashboard/runs/{run.id}"
    await fake.until(lambda: link in str(card["embeds"]))

    def pictures() -> list[Json]:
        return [m for m in fake.channel_messages(card["id"]) if m["attachments"]]

    (posted,) = await fake.until(pictures)
    (attachment,) = posted["attachments"]
    assert attachment["filename"] == f"dag-{run.id}.png" and attachment["content_type"] == "image/png"
    assert attachment["description"] == f"Steps graph of pair run {run.id}: 2 succeeded"
    data = fake.uploads[attachment["id"]]
    assert data.startswith(PNG) and attachment["size"] == len(data)
    assert link in str(posted["embeds"])  # the text with the link, for who cannot see images

    status = await fake.slash("status", run=run.id[:8])
    assert link in str(await fake.followup(status))
    await fake.until(lambda: len(pictures()) == 2)


async def test_the_console_draws_the_picture_in_the_thread(
    tmp_path: Path, workflows_dir: Path, browser: Browser
) -> None:
    workflow(PAIR, workflows_dir)
    app = await start_app(console_settings(tmp_path, workflows_dir))
    page = await browser.new_page(viewport={"width": 390, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # CSP included
    try:
        async with Client(app.url) as http:
            await http.command("/workflow run pair")
            run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
            assert (await finished(app.runtime, run_id)).status == "succeeded"
        await page.goto(f"{app.url}/#ops")
        await page.locator("button.msg__replies").first.click()
        picture = page.locator("#thread-messages img.card__image")
        await expect(picture).to_be_visible()
        await expect(picture).to_have_attribute("alt", f"Steps graph of pair run {run_id}: 2 succeeded")
        assert await picture.evaluate("img => img.complete && img.naturalWidth > 0")
        width = await picture.evaluate("img => img.getBoundingClientRect().width")
        assert 0 < width <= 390  # it fits the phone
    finally:
        await page.close()
        await stop_app(app, grace=1.0, flush=1.0)
    assert problems == []
