"""axe-core in the browser (the bundle shipped by axe-playwright-python): the serious and critical
violations on a page, as lines a failing assertion can show."""

from __future__ import annotations

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

AXE = Axe()
BLOCKING = ("serious", "critical")


async def serious_violations(page: Page) -> list[str]:
    """``rule: help (where)`` for each serious or critical violation on the page as it is now."""
    results = await AXE.run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in BLOCKING:
            where = ", ".join(
                f"{n['target']} ({n['any'][0]['message'] if n.get('any') else ''})"
                for n in violation["nodes"][:5]
            )
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {where}")
    return found
