"""Who someone is and where they spoke, mapped from any platform, and who may do what.

A workflow's ``permissions`` entries are matched here against a chat identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Identity:
    """A chat user, mapped from any platform: who they are, what groups they are in, whether admin."""

    platform: str  # slack | discord | console | cli
    workspace: str  # Slack team id, Discord guild id, "console"
    user_id: str
    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def ref(self) -> str:
        """How a run or a decision records this person: ``platform:user_id``."""
        return f"{self.platform}:{self.user_id}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, stored with runs and audit records."""
        return {
            "platform": self.platform,
            "workspace": self.workspace,
            "user_id": self.user_id,
            "name": self.name,
            "groups": sorted(self.groups),
            "admin": self.admin,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        """The identity a ``to_dict`` produced."""
        return cls(
            data["platform"],
            data["workspace"],
            data["user_id"],
            data["name"],
            frozenset(data.get("groups", ())),
            bool(data.get("admin", False)),
        )


@dataclass(frozen=True)
class Place:
    """Where something was said: a channel on a platform, maybe inside a thread."""

    platform: str
    channel: str  # the platform's channel id (console: the channel name, e.g. "ops")
    thread: str | None = None  # the thread's parent message ref, when in a thread
    channel_name: str | None = None  # "#ops", for permissions written with names

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, stored in a run's meta as its origin."""
        return {
            "platform": self.platform,
            "channel": self.channel,
            "thread": self.thread,
            "channel_name": self.channel_name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Place:
        """The place a ``to_dict`` produced."""
        return cls(data["platform"], data["channel"], data.get("thread"), data.get("channel_name"))


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
