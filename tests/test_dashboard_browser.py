"""A run's dashboard page in a real browser (Playwright driving Debian's headless Chromium): it signs in as
the console does, and its DAG changes colour as the run goes on, without a reload; it fits a phone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from bot.process import App, start_app, stop_app
from tests.accessibility import serious_violations
from tests.helpers import eventually
from tests.test_console import browser
from tests.test_console_api import Client, console_settings, write_workflows

__all__ = ["browser"]  # the console harness's fixture, used by name below

GATE = """
name: gate
steps:
  prepare:
    run: ["python3", "-c", "print('ready')"]
  hold:
    needs: [prepare]
    run: ["python3", "-c", "import os, time\\nwhile not os.path.exists({flag!r}): time.sleep(0.05)"]
  finish:
    needs: [hold]
    run: ["python3", "-c", "print('done')"]
"""

# Every element's own text against the first opaque background behind it (SVG text against its node's
# box): the pairs under 4.5:1 (WCAG AA for normal text).
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    let fg, bg;
    if (el instanceof SVGTextElement) {
      fg = rgb(style.fill);
      bg = rgb(getComputedStyle(el.parentElement.querySelector("rect")).fill);
    } else {
      fg = rgb(style.color).slice(0, 3);
      bg = behind(el);
    }
    const r = ratio(fg, bg);
    if (r < 4.5) low.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${r.toFixed(2)}:1`);
  }
  return low;
}"""


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "gate.yaml").write_text(GATE.format(flag=str(tmp_path / "go")))
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.mark.parametrize("width", [1440, 390])
async def test_the_dag_follows_the_run(app: App, browser: Browser, tmp_path: Path, width: int) -> None:
    async with Client(app.url) as http:
        await http.command("/workflow run gate")
    run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id

    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "401" not in m.text else None
    )
    try:
        await page.goto(f"{app.url}/dashboard/runs/{run_id}")  # not signed in: it signs in, then reloads
        await expect(page.locator(".me")).to_contain_text("alice")
        hold = page.locator('.dag__node[data-step="hold"]')
        await expect(hold).to_have_class("dag__node dag__node--running")
        await expect(page.locator('.dag__node[data-step="prepare"]')).to_have_class(
            "dag__node dag__node--succeeded"
        )
        await expect(page.locator('.dag__node[data-step="finish"]')).to_have_class(
            "dag__node dag__node--pending"
        )
        marker = await page.evaluate("window.__marker = 1")  # gone if the page reloaded
        assert marker == 1

        (tmp_path / "go").write_text("go")
        await expect(hold).to_have_class("dag__node dag__node--succeeded")
        await expect(page.locator('.dag__node[data-step="finish"]')).to_have_class(
            "dag__node dag__node--succeeded"
        )
        await expect(page.locator("#run-status")).to_have_text("succeeded")
        await expect(page.locator("#steps tr[data-key=finish] .badge")).to_have_text("succeeded")
        await expect(page.locator("#events")).to_contain_text("run_finished")
        assert await page.evaluate("window.__marker") == 1, "the page updated in place, no reload"
        await page.locator('.dag__link[href="#step-finish"]').click()  # a node leads to its step's row
        assert page.url.endswith("#step-finish")
        await expect(page.locator("#step-finish")).to_be_in_viewport()

        folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS", tmp_path))  # set it to review them
        await page.screenshot(path=str(folder / f"run-{width}.png"), full_page=True)

        assert await page.evaluate(LOW_CONTRAST) == []
        assert await serious_violations(page) == []

        # It fits the viewport: nothing wider than the screen but the graph's own scroll box.
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0

        await page.locator("nav a", has_text="Runs").click()
        await expect(page.locator(f'tr[data-run="{run_id}"] .badge')).to_have_text("succeeded")
        await page.screenshot(path=str(folder / f"runs-{width}.png"), full_page=True)
        assert await page.evaluate(LOW_CONTRAST) == []
        assert await serious_violations(page) == []

        # The first page of runs keeps itself up to date: a new run shows up without a reload.
        async with Client(app.url) as http:
            await http.command("/workflow run deploy service=api")

        async def two_runs() -> str | None:
            found = await app.runtime.store.list_runs(limit=2)
            return found[0].id if len(found) == 2 else None

        newer = await eventually(two_runs)
        await expect(page.locator("#runs tbody tr").first).to_have_attribute("data-run", newer)
    finally:
        await context.close()
    assert problems == []
