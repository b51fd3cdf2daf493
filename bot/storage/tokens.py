"""Machine tokens' rows: create (the secret leaves once, only its hash is kept), list, revoke and verify.

``verify`` is what an HTTP surface calls with the token it was given: it answers who the token acts as,
or None for anything that is not a live token (malformed, unknown, revoked, or lacking the scope).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import Conflict, NotFound
from bot.identity import Identity
from bot.storage.tables import api_tokens
from bot.tokens import TokenIdentity, looks_like_id, matches, new_token, token_id


@dataclass(frozen=True)
class TokenRecord:
    """A token as listed: everything but the secret, which is never stored."""

    id: str
    name: str
    scopes: tuple[str, ...]
    identity: Identity
    created_by: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    runner_labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for ``tokens list --json``."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "as": f"user:{self.identity.user_id}",
            "groups": sorted(self.identity.groups),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "runner_labels": list(self.runner_labels),
        }


LAST_USED_STEP = 10.0  # seconds: "last used" is kept to this precision


class TokenStore:
    """The ``api_tokens`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        name: str,
        scopes: frozenset[str],
        identity: Identity,
        created_by: str,
        now: float,
        runner_labels: frozenset[str] = frozenset(),
    ) -> tuple[TokenRecord, str]:
        """Store a new token; returns its record and its text, which nothing can show again."""
        made = new_token()
        row = {
            "id": made.id,
            "name": name,
            "secret_hash": made.digest,
            "scopes": sorted(scopes),
            "identity": identity.to_dict(),
            "created_by": created_by,
            "created_at": now,
            "runner_labels": sorted(runner_labels) if runner_labels else None,
        }
        async with self.engine.begin() as conn:
            existing = await self._find(conn, api_tokens.c.name == name)
            if existing is not None:
                raise Conflict(_taken(existing))
            try:
                async with conn.begin_nested():
                    await conn.execute(api_tokens.insert(), row)
            except sa.exc.IntegrityError:  # created by someone else since the look above
                raise Conflict(f"A token named {name!r} already exists; choose another --name") from None
        return _record({**row, "last_used_at": None, "revoked_at": None}), made.text

    async def list(self) -> list[TokenRecord]:
        """Every token, revoked ones included, oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(api_tokens.select().order_by(api_tokens.c.created_at))).mappings()
            return [_record(dict(r)) for r in rows]

    async def revoke(self, name_or_id: str, now: float) -> TokenRecord:
        """Revoke a token by name or id; it stops verifying at once."""
        column = api_tokens.c.id if looks_like_id(name_or_id) else api_tokens.c.name
        async with self.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                # SQLite: it reads before it writes, so it takes the write lock first; deferred, it failed
                # at once ("database is locked") when the running server committed in between.
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                found = await self._find(conn, column == name_or_id)
                if found is None:
                    raise NotFound(
                        f"No token named or with id {name_or_id!r}; `switchboard tokens list` shows them"
                    )
                if found.revoked_at is not None:
                    raise Conflict(f"Token {found.name!r} ({found.id}) is already revoked")
                await conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.id == found.id, api_tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
        return replace(found, revoked_at=now)

    async def verify(self, text: str, now: float, scope: str | None = None) -> TokenIdentity | None:
        """Who ``text`` acts as, if it is a live token (carrying ``scope`` when one is asked); else None."""
        wanted = token_id(text)
        row = None
        async with self.engine.connect() as conn:
            if wanted is not None:
                query = api_tokens.select().where(api_tokens.c.id == wanted)
                row = (await conn.execute(query)).mappings().first()
        genuine = matches(text, row["secret_hash"] if row else None)  # compared even when no row
        if row is None or not genuine or row["revoked_at"] is not None:
            return None
        found = TokenIdentity(
            row["id"],
            row["name"],
            frozenset(row["scopes"]),
            Identity.from_dict(row["identity"]),
            frozenset(row["runner_labels"] or ()),
        )
        if scope is not None and not found.allows(scope):
            return None
        last = row["last_used_at"]
        if last is None or now - last >= LAST_USED_STEP:
            # A write of its own, begun by the write (SQLite then waits its turn instead of failing),
            # and at most one per token every LAST_USED_STEP seconds however busy the API is.
            async with self.engine.begin() as conn:
                await conn.execute(
                    api_tokens.update().where(api_tokens.c.id == row["id"]).values(last_used_at=now)
                )
        return found

    async def _find(self, conn: Any, where: Any) -> TokenRecord | None:
        row = (await conn.execute(api_tokens.select().where(where))).mappings().first()
        return _record(dict(row)) if row else None


def _taken(existing: TokenRecord) -> str:
    if existing.revoked_at is not None:
        return (
            f"A token named {existing.name!r} existed and was revoked; names are never reused, "
            "so that logs name one token: choose another --name"
        )
    return f"A token named {existing.name!r} already exists ({existing.id}); choose another --name"


def _record(row: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        row["id"],
        row["name"],
        tuple(row["scopes"]),
        Identity.from_dict(row["identity"]),
        row["created_by"],
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"],
        tuple(row.get("runner_labels") or ()),
    )
