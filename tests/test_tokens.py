"""Tokens for machines: the format and scopes, the store's verify (what the REST API calls), and the CLI.

The store runs on SQLite and PostgreSQL; the CLI runs as a real process, as a user would run it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.errors import BadInput, Conflict, NotFound
from bot.identity import allowed
from bot.storage.database import create_engine, migrate
from bot.storage.tables import api_tokens
from bot.storage.tokens import TokenStore
from bot.tokens import acting_as, check_name, parse_scopes
from tests.test_cli import environment

TOKEN = re.compile(r"^sbt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")
NOW = 1_800_000_000.0


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[TokenStore]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield TokenStore(engine)
    await engine.dispose()


async def stored_rows(store: TokenStore) -> list[dict[str, object]]:
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(api_tokens))).mappings()]


def test_scopes_are_checked_and_a_typo_names_the_scopes_there_are() -> None:
    assert parse_scopes(["runs:read,runs:write", "approvals:write"]) == {
        "runs:read",
        "runs:write",
        "approvals:write",
    }
    with pytest.raises(BadInput) as caught:
        parse_scopes(["runs:wrte"])
    assert "Unknown scope 'runs:wrte'" in str(caught.value)
    assert "runs:write (start runs)" in str(caught.value) and "webhooks:receive" in str(caught.value)
    with pytest.raises(BadInput, match="at least one --scope"):
        parse_scopes([])
    with pytest.raises(BadInput, match="looks like a token id"):
        check_name("0123456789ab")
    with pytest.raises(BadInput, match="one user, written user:NAME"):
        acting_as("group:admins")


async def test_a_token_verifies_as_its_identity_with_its_scopes_and_only_its_hash_is_stored(
    store: TokenStore,
) -> None:
    identity = acting_as("user:deploybot", ["release-managers"])
    record, text = await store.create("ci", parse_scopes(["runs:write"]), identity, "ops", NOW)
    assert TOKEN.match(text), text  # recognisable in logs and by secret scanners

    found = await store.verify(text, NOW + 5, scope="runs:write")
    assert found is not None and found.name == "ci" and found.token_id == record.id
    assert found.identity == identity and found.identity.ref == "token:deploybot"
    # The identity is what approvals and permissions match against, as for a chat user.
    assert allowed(["user:deploybot"], found.identity) and allowed(["group:release-managers"], found.identity)
    assert found.allows("runs:write") and not found.allows("runs:read")
    assert await store.verify(text, NOW + 6, scope="approvals:write") is None  # not its scope

    [row] = await stored_rows(store)
    assert text not in json.dumps(row, default=str)
    assert row["secret_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert row["last_used_at"] == NOW + 5  # a refused scope is not a use

    [listed] = await store.list()
    assert (listed.name, listed.scopes, listed.last_used_at, listed.revoked_at) == (
        "ci",
        ("runs:write",),
        NOW + 5,
        None,
    )
    assert text not in json.dumps(listed.to_dict())


async def test_anything_but_a_live_token_is_refused(store: TokenStore) -> None:
    scopes = parse_scopes(["runs:read"])
    _, text = await store.create("reader", scopes, acting_as("bot"), "ops", NOW)
    _, other = await store.create("other", scopes, acting_as("bot"), "ops", NOW)
    prefix, _, secret = text.rpartition("_")
    forged = f"{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"  # the right id, a wrong secret
    swapped = other[:16] + text[16:]  # another token's id with this one's secret
    for bad in (forged, swapped, "", "sbt_", text[:-1], "Bearer " + text, text.upper()):
        assert await store.verify(bad, NOW) is None, bad
    assert await store.verify(f" {text}\n", NOW) is not None  # a pasted newline is not a different token

    revoked = await store.revoke("reader", NOW + 1)
    assert revoked.revoked_at == NOW + 1
    assert await store.verify(text, NOW + 2) is None
    assert await store.verify(other, NOW + 2, scope="runs:read") is not None  # the other one still works


async def test_duplicate_names_unknown_tokens_and_double_revokes_get_clear_messages(
    store: TokenStore,
) -> None:
    scopes = parse_scopes(["webhooks:receive"])
    record, _ = await store.create("hooks", scopes, acting_as("user:github"), "ops", NOW)
    with pytest.raises(
        Conflict, match=r"A token named 'hooks' already exists \([0-9a-f]{12}\); choose another"
    ):
        await store.create("hooks", scopes, acting_as("user:github"), "ops", NOW)
    with pytest.raises(NotFound, match=r"No token named or with id 'hookz'; `switchboard tokens list`"):
        await store.revoke("hookz", NOW)
    await store.revoke(record.id, NOW)  # by id works too
    with pytest.raises(Conflict, match="is already revoked"):
        await store.revoke("hooks", NOW)
    with pytest.raises(Conflict, match="was revoked; names are never reused"):
        await store.create("hooks", scopes, acting_as("user:github"), "ops", NOW)
    assert len(await stored_rows(store)) == 1  # the refusals changed nothing


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def switchboard(env: dict[str, str], *args: str) -> Ran:
    def run() -> Ran:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", *args], env=env, capture_output=True, text=True, timeout=60
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return await asyncio.to_thread(run)


async def test_the_cli_prints_the_token_once_lists_without_it_and_revokes_it(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    env = environment(db_url, tmp_path)
    create = ("tokens", "create", "--name", "ci", "--scope", "runs:write", "--as", "user:deploybot")
    made = await switchboard(env, *create)
    assert made.code == 0, made.err
    text = made.out.strip()
    assert TOKEN.match(text) and made.out == text + "\n"  # stdout is the token alone: $(...) captures it
    assert "Created token 'ci'" in made.err and "not shown again" in made.err

    typo, again, listed = await asyncio.gather(
        switchboard(env, "tokens", "create", "--name", "ci2", "--scope", "run:write", "--as", "deploybot"),
        switchboard(env, *create),
        switchboard(env, "tokens", "list"),
    )
    assert typo.code == 2 and "Unknown scope 'run:write'; the scopes are runs:read" in typo.err
    assert again.code == 1 and "A token named 'ci' already exists" in again.err
    assert listed.code == 0 and text not in listed.out
    assert re.search(r"ci\s+runs:write\s+user:deploybot\s+\d{4}-\d\d-\d\d", listed.out), listed.out

    gone, unknown = await asyncio.gather(
        switchboard(env, "tokens", "revoke", "ci"), switchboard(env, "tokens", "revoke", "nope")
    )
    assert gone.code == 0 and "Revoked token 'ci'" in gone.out
    assert unknown.code == 1 and "No token named or with id 'nope'" in unknown.err
    engine = create_engine(db_url)
    try:
        assert await TokenStore(engine).verify(text, NOW) is None
        [record] = await TokenStore(engine).list()
        assert record.revoked_at is not None
    finally:
        await engine.dispose()
    shown = await switchboard(env, "tokens", "list", "--json")
    [entry] = json.loads(shown.out)
    assert entry["name"] == "ci" and entry["revoked_at"] is not None and text not in shown.out
