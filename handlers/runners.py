"""``/runners``: the remote runners heard from lately, and the runner jobs waiting, running and lost."""

from __future__ import annotations

from handlers.services import Services
from handlers.types import Command, Reply, Say

RECENT = 3600.0  # seconds: runners silent for longer are left out
SHOWN = 25  # runners listed in one reply


async def runners_command(cmd: Command, svc: Services) -> Reply:
    """One line a runner: name, labels, version, busy or idle (or offline), last seen."""
    now = svc.now()
    rows = await svc.runtime.runners.list(now - RECENT)
    counts = await svc.runtime.jobs.counts()
    alive = now - svc.settings.runner_lease
    jobs = (
        f"Jobs: {counts.get('queued', 0)} waiting, {counts.get('leased', 0)} running, "
        f"{counts.get('lost', 0)} lost."
    )
    if not rows:
        return Say(f"No runner was heard from in the last hour. {jobs}")
    lines = []
    for r in rows[:SHOWN]:
        labels, ago = ", ".join(r.labels), now - r.last_seen
        lines.append(f"• {r.name} [{labels}] v{r.version}: {r.state(alive)}, last seen {ago:.0f}s ago")
    more = f"\n…and {len(rows) - SHOWN} more (`switchboard runners list`)" if len(rows) > SHOWN else ""
    return Say("Runners:\n" + "\n".join(lines) + more + f"\n{jobs}")
