"""``switchboard webhooks add|list|remove|deliveries``: who is told about runs, approvals and conversations.

``add`` prints the subscription's signing secret once (the receiver verifies each delivery with it, as
the Standard Webhooks libraries do); ``deliveries`` shows what was sent and what the receiver answered.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from bot.cli.wiring import open_database
from bot.config import Settings
from bot.identity import canonical, shown
from bot.storage.webhooks import Subscriptions


async def add(settings: Settings, args: argparse.Namespace) -> int:
    """Store a subscription and print its id and secret."""
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    async with open_database(settings) as engine:
        sub = await Subscriptions(engine).add(args.url, events, canonical(args.user), time.time())
    if args.json:
        print(json.dumps(sub.__dict__, indent=2))
        return 0
    print(f"added webhook {sub.id} -> {sub.url} for {', '.join(sub.events)}")
    print(f"signing secret (shown once; the receiver verifies webhook-signature with it): {sub.secret}")
    return 0


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    """Every subscription (without secrets)."""
    async with open_database(settings) as engine:
        subs = await Subscriptions(engine).all()
    if args.json:
        print(json.dumps([{k: v for k, v in s.__dict__.items() if k != "secret"} for s in subs], indent=2))
        return 0
    if not subs:
        print("no webhooks; `switchboard webhooks add URL --events run.*` adds one")
    for s in subs:
        print(f"{s.id}  {s.url}  {','.join(s.events)}  added {_when(s.created_at)} by {shown(s.created_by)}")
    return 0


async def remove(settings: Settings, args: argparse.Namespace) -> int:
    """Delete a subscription."""
    async with open_database(settings) as engine:
        sub = await Subscriptions(engine).remove(args.id, time.time())
    print(f"removed webhook {sub.id} ({sub.url})")
    return 0


async def deliveries(settings: Settings, args: argparse.Namespace) -> int:
    """The delivery log, newest first, each with its attempts."""
    limit = max(1, min(args.limit, 500))
    async with open_database(settings) as engine:
        subs = Subscriptions(engine)
        sub_id = (await subs.get(args.id)).id if args.id else None
        rows = await subs.deliveries(sub_id, limit)
        tries = await subs.attempts([r.id for r in rows]) if rows else []
    by_delivery: dict[int, list[dict[str, Any]]] = {}
    for t in tries:
        by_delivery.setdefault(t.delivery_id, []).append(dict(t._mapping))
    shown = [
        {**{k: v for k, v in r._mapping.items() if k != "body"}, "attempt_log": by_delivery.get(r.id, [])}
        for r in rows
    ]
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    if not rows:
        print("no deliveries yet")
    for d in shown:
        print(
            f"{d['id']}  {d['subscription_id']}  {d['event_type']:<22} {d['status']:<9} "
            f"{d['attempts']} attempt(s)  {d['message_id']}  {_when(d['created_at'])}"
        )
        for a in d["attempt_log"]:
            answer = f"HTTP {a['status_code']}" if a["status_code"] is not None else "no answer"
            excerpt = (a["response"] or "").replace("\n", " ")[:80]
            error = f"  {a['error']}" if a["error"] else ""
            took = f"{a['took'] * 1000:.0f}ms"
            print(f"    #{a['attempt']} {_when(a['at'])}  {answer}  {took}{error}  {excerpt}")
    return 0


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")
