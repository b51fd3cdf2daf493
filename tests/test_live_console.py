"""The assistant's answer streamed into the console page: the real app, the real openai client against
the fake server writing a word every 0.15 s, and a real headless Chromium that must see part of the
answer before the whole of it, in one message that then becomes the reply with its button."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from bot.process import start_app, stop_app
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.test_console import send
from tests.test_console_conversations import act_as, browser, settings
from tests.test_console_reading import shots

__all__ = ["browser"]  # the fixture, used by name below
WORDS = "Your last deploy to staging ran at 14:02 UTC and passed its smoke tests; shall I start the same one on prod, okay?"

# True once a bot message shows the start of the answer, still being written, without its end.
PARTIAL = """() => [...document.querySelectorAll("#messages .msg--bot")].some(
  (m) => m.innerText.includes("Your last") && m.innerText.includes("…") && !m.innerText.includes("okay?"))"""


async def test_the_page_shows_the_answer_while_it_is_written(
    tmp_path: Path, workflows_dir: Path, browser: Browser
) -> None:
    async with FakeOpenAI(chunk_delay=0.15) as fake:
        app = await start_app(settings(tmp_path, workflows_dir, fake))
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        try:
            await page.goto(f"{app.url}/#ops")
            await act_as(page, "alice", "@alice")
            fake.script(Text(WORDS))
            await send(page, "tell me everything")
            await page.wait_for_function(PARTIAL, timeout=15_000)  # part of it, live
            await page.screenshot(path=shots(tmp_path) / "console-streaming.png")
            answer = page.locator("#messages .msg--bot", has_text="okay?")
            await expect(answer).to_have_count(1, timeout=15_000)
            await expect(answer.locator("button", has_text="Talk to a human")).to_have_count(1)
            await expect(answer).not_to_contain_text("…")
            await expect(page.locator("#messages .msg--bot")).to_have_count(1)  # the preview became it
            await page.screenshot(path=shots(tmp_path) / "console-streamed.png")
        finally:
            await page.close()
            await stop_app(app, grace=0.5, flush=0.5)
