"""``switchboard conversations stats``: the conversation analytics, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from bot.cli.audit import parse_since
from bot.cli.wiring import open_database
from bot.config import Settings
from bot.conversations.transcripts import stats

SHARES = {"resolved_by_ai", "handover_rate"}


async def print_stats(settings: Settings, args: argparse.Namespace) -> int:
    """``switchboard conversations stats``."""

    since = parse_since(args.since) if args.since else 0.0
    async with open_database(settings) as engine:
        figures = (await stats(engine, since)).report()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    agents = figures.pop("agents")
    for name, value in figures.items():
        shown = "n/a" if value is None else f"{value:.0%}" if name in SHARES else value
        print(f"{name.replace('_', ' '):<24} {shown}")
    for name, load in agents.items():  # type: ignore[attr-defined]
        print(f"agent {name:<18} holding {load['holding']}, handled {load['handled']}")
    return 0
