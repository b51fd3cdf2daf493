"""Every run and approval card state as the console draws it, in headless Chromium with the console's own
stylesheet: each is shown whole, its badge says its state, and nothing runs wider than the message column.

A screenshot of each lands in the test's tmp_path, or in $CARD_SCREENSHOTS when set (to review them).
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Browser, expect

from bot.platforms.console.web import STATIC
from cards.html import render_html
from tests.card_samples import CARDS
from tests.test_console import browser

__all__ = ["browser"]

STATES = sorted(name for name in CARDS if name.startswith(("run_", "approval_")) and name != "run_failed_50")
PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>{css}</style></head>
<body><main style="width: 720px; padding: 16px"><article class="msg msg--bot"><div class="msg__main">
<div class="msg__body">{card}</div></div></article></main></body></html>"""


async def test_each_card_state_is_drawn_whole(browser: Browser, tmp_path: Path) -> None:
    css = (STATIC / "console.css").read_text(encoding="utf-8")
    folder = Path(os.environ.get("CARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page = await browser.new_page(viewport={"width": 760, "height": 900})
    try:
        for name in STATES:
            card = CARDS[name]
            await page.set_content(PAGE.format(css=css, card=render_html(card)))
            drawn = page.locator(".card")
            await expect(drawn.locator(".badge")).to_have_text(card.status or "")
            await expect(drawn.locator(".step")).to_have_count(len(card.steps))
            await expect(drawn.locator(".card__actions button")).to_have_count(len(card.buttons))
            wider = await drawn.evaluate("c => c.scrollWidth - c.clientWidth")
            assert wider <= 0, f"{name} runs {wider}px wider than its column"
            await drawn.screenshot(path=str(folder / f"{name}.png"))
    finally:
        await page.close()
    assert len(list(folder.glob("*.png"))) >= len(STATES)
