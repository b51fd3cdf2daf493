"""Who may do what: a workflow's ``permissions`` entries matched against a chat identity."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.types import Identity, Place


def matches(entry: str, who: Identity, where: Place | None = None) -> bool:
    """Whether one entry (``user:NAME``, ``group:NAME``, ``channel:NAME`` or a bare name) covers ``who``."""
    kind, sep, name = entry.partition(":")
    if not sep:
        kind, name = "user", entry
    name = name.strip().lower()
    if kind == "user":
        return name in {who.user_id.lower(), who.name.lower(), who.ref.lower()}
    if kind == "group":
        return name in {g.lower() for g in who.groups}
    if kind == "channel" and where is not None:
        names = {where.channel.lower(), (where.channel_name or "").lower()}
        return name.lstrip("#") in {n.lstrip("#") for n in names if n}
    return False


def allowed(entries: Sequence[str], who: Identity, where: Place | None = None) -> bool:
    """An empty list allows everyone; admins are always allowed."""
    return who.admin or not entries or any(matches(e, who, where) for e in entries)


def describe(entries: Sequence[str]) -> str:
    """The entries as a reader would say them: "group:release-managers, user:alice"."""
    return ", ".join(entries) if entries else "everyone"
