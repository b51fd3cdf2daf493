"""Schedules: each ``on: schedule`` entry is a row with its next fire time and a durable ``schedule`` timer.

At start every declared entry is stored (a new or changed entry from now on, an unchanged one keeping its
stored time) and its timer armed; the runtime's alarm rings it in whichever process claims it first. When it
rings, the run is submitted with an id derived from the entry and the fire time, then the row moves on to the
next fire time in the same transaction that marks the timer fired. A process that dies in between leaves
the timer claimed; the one that fires it after the claim lapses finds that run and only moves the row on, so
each fire starts one run, whatever the number of processes.

A fire is *missed* when it rings more than MISSED_AFTER late (no process ran at the time). ``missed:
run_once`` runs it once, however many fire times passed; ``missed: skip`` starts nothing and waits for the
next fire time. Either way the next fire time is the first one after now.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.storage import schedules as rows
from bot.storage.action_log import record_action
from engine.cron import next_fire, parse_cron, time_zone
from engine.loader import LoadedWorkflow, WorkflowInvalid, WorkflowNotFound
from engine.trigger_spec import ScheduleSpec, origin

log = logging.getLogger(__name__)

MISSED_AFTER = 300.0  # a fire this late is a missed one (the alarm itself is late by far less than this)


def schedule_id(workflow: str, position: int) -> str:
    """A stored entry's id: the workflow's name and the entry's place in its list."""
    return hashlib.sha256(f"{workflow}\0{position}".encode()).hexdigest()[:32]


def fingerprint(entry: ScheduleSpec) -> str:
    """What makes an entry the same entry: its cron, zone, policy and inputs."""
    return hashlib.sha256(json.dumps(entry.model_dump(), sort_keys=True, default=str).encode()).hexdigest()


def fire_run_id(entry_id: str, due: float) -> str:
    """The run one fire starts: the same in every process, so a second try finds it, starting none."""
    return hashlib.sha256(f"{entry_id}@{due:.3f}".encode()).hexdigest()[:12]


def first_fire(entry: ScheduleSpec, now: float) -> float:
    """The entry's first fire time after ``now`` (the loader refused entries that never fire)."""
    moment = next_fire(parse_cron(entry.cron), time_zone(entry.timezone), now)
    if moment is None:  # pragma: no cover - checked at load
        raise ValueError(f"cron '{entry.cron}' never fires")
    return moment


@dataclass
class Scheduler:
    """Keeps the stored schedules in step with the workflows folder and fires them."""

    runtime: Runtime
    catalog: Catalog

    async def start(self) -> None:
        """Store every declared entry, arm its timer, and take the ``schedule`` timers of the alarm."""
        await self.sync()
        await self.runtime.handle_timers(rows.KIND, self.ring)

    async def sync(self) -> list[rows.ScheduleRow]:
        """Store each workflow's schedule entries (retiring those no longer declared); returns the rows."""
        rt = self.runtime
        now = rt.clock()
        keep: set[str] = set()
        earliest: float | None = None
        for loaded in self.catalog.workflows():
            for position, entry in enumerate(loaded.spec.on.schedule):
                entry_id = schedule_id(loaded.spec.name, position)
                keep.add(entry_id)
                row = {
                    "id": entry_id,
                    "workflow": loaded.spec.name,
                    "position": position,
                    "fingerprint": fingerprint(entry),
                    "cron": entry.cron,
                    "timezone": entry.timezone,
                    "missed": entry.missed,
                }
                due = await rows.sync_entry(rt.store.engine, row, first_fire(entry, now), now)
                earliest = due if earliest is None else min(earliest, due)
        await rows.retire_others(rt.store.engine, keep, now)
        if earliest is not None:
            rt.alarm.arm(earliest)
        return await rows.list_schedules(rt.store.engine)

    async def ring(self, timer_id: int, entry_id: str) -> bool:
        """A ``schedule`` timer rang: start the run its entry is due for (or skip a missed one), move on."""
        rt = self.runtime
        now = rt.clock()
        row = await rows.schedule_row(rt.store.engine, entry_id)
        if row is None or row.next_at is None:
            return await rows.rearm(rt.store.engine, timer_id, entry_id, None, now)
        if row.next_at > now:
            return await rows.rearm(rt.store.engine, timer_id, entry_id, row.next_at, now)  # rang early
        found = self._entry(row)
        if found is None:  # the workflow changed since: its entry fires no more until the next sync
            log.warning("schedule %s of %s is no longer declared; it stops", row.position, row.workflow)
            return await rows.rearm(rt.store.engine, timer_id, entry_id, None, now)
        loaded, entry = found
        due = row.next_at
        following = first_fire(entry, now)
        late = now - due
        run_id: str | None = fire_run_id(entry_id, due)
        if late > MISSED_AFTER and entry.missed == "skip":
            log.info("schedule of %s missed its fire %.0f s ago; skipped (missed: skip)", row.workflow, late)
            run_id = None
        elif run_id is not None and await rt.store.run_row(run_id) is None:
            meta: dict[str, Any] = {
                "source": "schedule",
                "cron": entry.cron,
                "timezone": entry.timezone,
                "due_at": due,
            }
            place = origin(entry.channel)
            if place is not None:
                meta["origin"] = place
            started_by = f"schedule:{loaded.spec.name}"
            await rt.submit(loaded, dict(entry.inputs), started_by=started_by, meta=meta, run_id=run_id)
            await _audit(rt, loaded.spec.name, entry, due, late, run_id)
            log.info("schedule of %s started run %s (due %.0f s ago)", row.workflow, run_id, late)
        won = await rows.advance(rt.store.engine, timer_id, entry_id, due, following, run_id, now)
        if won:
            rt.alarm.arm(following)
        return won

    def _entry(self, row: rows.ScheduleRow) -> tuple[LoadedWorkflow, ScheduleSpec] | None:
        try:
            loaded = self.catalog.workflow(row.workflow)
        except (WorkflowNotFound, WorkflowInvalid):
            return None
        entries = loaded.spec.on.schedule
        if row.position >= len(entries) or fingerprint(entries[row.position]) != row.fingerprint:
            return None
        return loaded, entries[row.position]


async def _audit(
    rt: Runtime, workflow: str, entry: ScheduleSpec, due: float, late: float, run_id: str
) -> None:
    """The action log's row for a scheduled start: source ``schedule``."""
    row = {
        "at": rt.clock(),
        "actor": f"schedule:{workflow}",
        "identity": {
            "platform": "schedule",
            "workspace": "schedules",
            "user_id": workflow,
            "name": workflow,
            "groups": [],
        },
        "place": {"platform": "schedule", "channel": workflow, "thread": None, "channel_name": None},
        "kind": "schedule",
        "detail": {
            "source": "schedule",
            "cron": entry.cron,
            "timezone": entry.timezone,
            "due_at": due,
            "late": round(late, 3),
            "missed": late > MISSED_AFTER,
        },
        "outcome": "ok",
        "run_id": run_id,
    }
    try:
        await record_action(rt.store.journal, row)
    except Exception:
        log.exception("could not record scheduled run %s in the action log", run_id)
