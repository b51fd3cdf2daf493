"""``switchboard conversations stats``: the conversation analytics, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from bot.cli.audit import parse_since
from bot.cli.wiring import open_database
from bot.config import Settings
from bot.conversations.transcripts import stats
from bot.runtime.costs import Prices

SHARES = {"resolved_by_ai", "handover_rate"}


async def print_stats(settings: Settings, args: argparse.Namespace) -> int:
    """``switchboard conversations stats``."""

    since = parse_since(args.since) if args.since else 0.0
    async with open_database(settings) as engine:
        figures = (await stats(engine, since, Prices.from_settings(settings))).report()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    agents = figures.pop("agents")
    currency = figures.pop("currency")
    for name, value in figures.items():
        shown = "n/a" if value is None else f"{value:.0%}" if name in SHARES else value
        if value is not None and "cost" in name:
            shown = f"{value} {currency}"
        elif value is not None and name == "satisfaction_avg":
            shown = f"{value} of 5"
        print(f"{name.replace('_', ' '):<30} {shown}")
    if figures["ai_cost"] is None or figures["human_cost"] is None:
        print(
            "(costs: set SWITCHBOARD_LLM_PRICE_PROMPT_PER_MTOK, SWITCHBOARD_LLM_PRICE_COMPLETION_PER_MTOK "
            "and SWITCHBOARD_AGENT_HOURLY_COST)"
        )
    for name, load in agents.items():  # type: ignore[attr-defined]
        print(f"agent {name:<18} holding {load['holding']}, handled {load['handled']}")
    return 0
