"""Tokens for machines: their format, their scopes and who a verified token acts as (pure: no I/O).

A token reads ``sbt_<id>_<secret>``. The prefix lets logs and secret scanners recognise one, the id finds
its row, and only the SHA-256 of the whole token is stored: the secret has 256 bits of entropy, so a
plain hash (no slow KDF) cannot be brute-forced, and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import BadInput
from bot.identity import Identity

PREFIX = "sbt_"
PLATFORM = "token"  # Identity.platform of whoever a token acts as, so records say how they got in
SCOPES = {
    "runs:read": "read runs and their status",
    "runs:write": "start runs",
    "approvals:write": "decide approvals as the token's identity",
    "conversations:write": "talk with the assistant and the agents' desk as the token's identity",
    "webhooks:receive": "deliver webhooks",
    "webhooks:manage": "add, list and remove outbound webhooks and read their deliveries (admins only)",
    "runner": "act as a remote runner: take and report the step jobs of the token's --label labels",
}
ID_HEX = 12
TOKEN = re.compile(rf"^{PREFIX}(?P<id>[0-9a-f]{{{ID_HEX}}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")
RUNNER_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # as engine.spec.RUNNER_LABEL
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
_NO_HASH = "0" * 64  # compared against when no row matches, so a miss costs what a hit costs


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: ``text`` is shown once, ``digest`` is what is stored."""

    id: str
    text: str
    digest: str


@dataclass(frozen=True)
class TokenIdentity:
    """Who a verified token acts as, and what it may do."""

    token_id: str
    name: str
    scopes: frozenset[str]
    identity: Identity
    runner_labels: frozenset[str] = frozenset()  # a runner token takes jobs of these labels only

    def allows(self, scope: str) -> bool:
        """Whether the token carries ``scope`` (a scope Switchboard does not know is a bug in the caller)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        return scope in self.scopes


def new_token() -> NewToken:
    """A new random token: 48 bits of id, 256 bits of secret."""
    token_id = secrets.token_hex(ID_HEX // 2)
    text = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return NewToken(token_id, text, digest(text))


def digest(text: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(text.encode()).hexdigest()


def token_id(text: str) -> str | None:
    """The id inside a well-formed token, or None for anything else (whitespace around it is ignored)."""
    found = TOKEN.match(text.strip())
    return found.group("id") if found else None


def matches(text: str, stored: str | None) -> bool:
    """Whether ``text`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(digest(text.strip()), stored or _NO_HASH) and stored is not None


def looks_like_id(text: str) -> bool:
    """Whether ``text`` has the form of a token id (names may not, so ``revoke X`` is never ambiguous)."""
    return re.fullmatch(rf"[0-9a-f]{{{ID_HEX}}}", text) is not None


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Scopes from ``--scope`` values (each may list several, comma-separated); an unknown one is refused."""
    scopes = {part.strip() for value in values for part in value.split(",") if part.strip()}
    if not scopes:
        raise BadInput(f"A token needs at least one --scope: {known_scopes()}")
    unknown = sorted(scopes - SCOPES.keys())
    if unknown:
        raise BadInput(f"Unknown scope {', '.join(map(repr, unknown))}; the scopes are {known_scopes()}")
    return frozenset(scopes)


def parse_labels(values: Iterable[str], scopes: frozenset[str]) -> frozenset[str]:
    """A runner token's labels from ``--label`` values (each may list several); only with the runner scope."""
    labels = {part.strip() for value in values for part in value.split(",") if part.strip()}
    if labels and "runner" not in scopes:
        raise BadInput("--label is for runner tokens: add --scope runner, or leave out --label")
    if "runner" in scopes and not labels:
        raise BadInput(
            "A runner token needs the labels whose jobs it may take: --label deploy (several: --label a,b)"
        )
    bad = sorted(label for label in labels if not RUNNER_LABEL.match(label))
    if bad:
        raise BadInput(
            f"Runner label {bad[0]!r}: use 1-63 letters, digits, '.', '_' or '-', starting with one"
        )
    return frozenset(labels)


def known_scopes() -> str:
    """Every scope with what it allows, for messages and help."""
    return "; ".join(f"{name} ({what})" for name, what in SCOPES.items())


def check_name(name: str) -> str:
    """A token's name: 1-80 letters, digits, '.', '_' or '-', and not shaped like a token id."""
    if not NAME.match(name):
        raise BadInput(f"Token name {name!r}: use 1-80 letters, digits, '.', '_' or '-', starting with one")
    if looks_like_id(name):
        raise BadInput(f"Token name {name!r} looks like a token id; choose a name with a non-hex letter")
    return name


def acting_as(entry: str, groups: Iterable[str] = ()) -> Identity:
    """The identity a token acts as, from ``--as user:NAME`` (or a bare ``NAME``) and its groups."""
    kind, sep, name = entry.partition(":")
    if not sep:
        kind, name = "user", entry
    if kind != "user":
        raise BadInput(f"--as {entry!r}: a token acts as one user, written user:NAME (e.g. user:deploybot)")
    if not USER.match(name):
        raise BadInput(f"--as {entry!r}: a user name is 1-200 letters, digits, '.', '_', '@' or '-'")
    return Identity(PLATFORM, "", name, name, frozenset(g.strip() for g in groups if g.strip()))
