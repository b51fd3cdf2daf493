"""``switchboard tokens create|list|revoke``: tokens for machines (CI, the REST API).

``create`` prints the token alone on stdout, so ``TOKEN=$(switchboard tokens create ...)`` captures it,
and says on stderr what it is; the token is never shown again, because only its hash is stored.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime

from bot.cli.wiring import open_database
from bot.config import Settings
from bot.storage.tokens import TokenRecord, TokenStore
from bot.tokens import acting_as, check_name, known_scopes, parse_labels, parse_scopes


async def create(settings: Settings, args: argparse.Namespace) -> int:
    """``tokens create``: the token on stdout, what it is on stderr."""
    name = check_name(args.name)
    scopes = parse_scopes(args.scope)
    identity = acting_as(args.user, args.group)
    labels = parse_labels(getattr(args, "label", None) or [], scopes)
    async with open_database(settings) as engine:
        record, text = await TokenStore(engine).create(
            name, scopes, identity, getpass.getuser(), time.time(), labels
        )
    print(
        f"Created token {record.name!r} (id {record.id}) acting as user:{identity.user_id}"
        f" with {', '.join(record.scopes)}"
        + (f" for runner labels {', '.join(record.runner_labels)}" if record.runner_labels else "")
        + ". Copy it now: it is not shown again.",
        file=sys.stderr,
    )
    print(text, flush=True)
    return 0


async def list_tokens(settings: Settings, args: argparse.Namespace) -> int:
    """``tokens list``: never the secret, which is not stored."""
    async with open_database(settings) as engine:
        records = await TokenStore(engine).list()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no tokens yet; `switchboard tokens create --name NAME --scope SCOPE --as user:NAME` makes one")
        print(f"scopes: {known_scopes()}")
        return 0
    print(f"{'ID':<12}  {'NAME':<16} {'SCOPES':<28} {'AS':<20} {'CREATED':<19}  {'LAST USED':<19}  REVOKED")
    for r in records:
        print(
            f"{r.id:<12}  {r.name:<16} {','.join(r.scopes):<28} {_who(r):<20} {_when(r.created_at):<19}"
            f"  {_when(r.last_used_at):<19}  {_when(r.revoked_at)}"
        )
    return 0


async def revoke(settings: Settings, args: argparse.Namespace) -> int:
    """``tokens revoke NAME|ID``."""
    async with open_database(settings) as engine:
        record = await TokenStore(engine).revoke(args.token, time.time())
    print(f"Revoked token {record.name!r} (id {record.id}); requests carrying it are refused from now on.")
    return 0


def _who(record: TokenRecord) -> str:
    groups = f" ({','.join(sorted(record.identity.groups))})" if record.identity.groups else ""
    return f"user:{record.identity.user_id}{groups}"


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
