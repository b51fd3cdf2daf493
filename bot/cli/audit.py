"""``switchboard approvals audit``: export the approval audit records, oldest first, as JSON or CSV.

The records come from the append-only ``approval_audit`` table: every request, automatic approval,
reminder, escalation, vote, repeated vote, denied attempt, late click and expiry, with who did it and
from where.
Each is joined to its approval request for the step and the title.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.approvals.views import names
from bot.cli.wiring import open_database
from bot.config import Settings
from bot.errors import BadInput, NotFound
from bot.identity import shown
from bot.storage.approvals import audit_rows
from bot.storage.runs import RunStore

COLUMNS = (
    "id",
    "at",
    "actor",
    "actor_name",
    "action",
    "source",
    "approval_id",
    "run_id",
    "step_key",
    "title",
    "detail",
)
SINCE_HELP = (
    "--since takes an ISO date (2026-11-20) or date and time (2026-11-20T14:02, 2026-11-20T14:02:00+01:00); "
    "a time without an offset is UTC"
)


def parse_since(text: str) -> float:
    """Epoch seconds of an ISO date (its midnight) or date-time, UTC unless it has an offset."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{SINCE_HELP}; got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(moment: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the millisecond: 2026-11-20T14:02:03.120Z."""
    return datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def export(settings: Settings, args: argparse.Namespace) -> int:
    """Print the matching records to stdout in the chosen format."""
    since = parse_since(args.since) if args.since is not None else None
    async with open_database(settings) as engine:
        run_id = None
        if args.run:
            row = await RunStore(engine).run_row(args.run)
            if row is None:
                raise NotFound(f"No run {args.run!r}; `switchboard workflow status` lists recent runs")
            run_id = row.id
        records = await audit_records(engine, run_id, since)
    if args.format == "csv":
        write_csv(records, sys.stdout)
    else:
        json.dump(records, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


async def audit_records(
    engine: AsyncEngine, run_id: str | None = None, since: float | None = None
) -> list[dict[str, Any]]:
    """The audit records, oldest first, as plain dicts (``detail`` a dict, ``at`` an ISO string).

    ``actor`` is the ref as recorded; ``actor_name`` is how text names them ("@alice").
    """
    found = await audit_rows(engine, run_id, since)
    async with engine.connect() as conn:
        known = await names(conn, {r.actor for r in found})
    return [
        {
            "id": r.id,
            "at": iso(r.at),
            "actor": r.actor,
            "actor_name": shown(r.actor, known),
            "action": r.action,
            "source": r.source,
            "approval_id": r.approval_id,
            "run_id": r.run_id,
            "step_key": r.step_key,
            "title": r.title,
            "detail": r.detail,
        }
        for r in found
    ]


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    """One header row, then one row per record; ``detail`` is written as JSON text."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for record in records:
        writer.writerow(
            [
                json.dumps(record[c], ensure_ascii=False, sort_keys=True) if c == "detail" else record[c]
                for c in COLUMNS
            ]
        )
