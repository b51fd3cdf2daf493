"""Who someone is and where they spoke, mapped from any platform, and who may do what.

A workflow's ``permissions`` entries are matched here against a chat identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cards.mentions import USER_IDS, mention


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


# Platforms whose people are named ``platform:id`` in data; anything else without a prefix is a console user.
PEOPLE_PLATFORMS = ("console", "slack", "discord", "email", "token")
# Starters that are not people: named as the thing that started the run.
NOT_PEOPLE = {
    "webhook": "webhook",
    "schedule": "schedule",
    "parent run": "parent run",
    "engine": "Switchboard",
    "timer": "Switchboard (timer)",
}
# Platforms that render a mention of their own users from ``<@id>``.
MENTIONS = ("slack", "discord")


def canonical(entry: str) -> str:
    """The one spelling of a person in data, however they were named at the edge.

    ``alice``, ``@alice``, ``user:alice`` and ``console:alice`` are all ``console:alice`` (the console
    user, whom the CLI's ``--as`` also names); ``slack:U024BE7LH``, ``discord:80351…``, ``token:NAME``,
    ``webhook:NAME`` and ``schedule:WF`` stay as they are.
    """
    text = entry.strip()
    platform, sep, rest = text.partition(":")
    if sep and (platform in PEOPLE_PLATFORMS or platform in NOT_PEOPLE) and rest:
        return f"{platform}:{rest.strip()}"
    if sep and platform == "user" and rest:
        text = rest.strip()
    return f"console:{text.lstrip('@')}"


def shown(ref: str, names: Mapping[str, str] | None = None, on: str | None = None) -> str:
    """How text names the person (or trigger) behind ``ref``: "@alice", a mention, "webhook deploy".

    ``names`` maps refs to display names where one is known (their chat name); ``on`` is the platform
    the text is shown on: a card for Slack or Discord names that platform's users with a mention marker
    (cards/mentions.py), which its renderer draws as ``<@id>`` and every other place as "@name".
    """
    kind, sep, rest = ref.partition(":")
    if not sep or not rest:
        return NOT_PEOPLE.get(ref) or f"@{ref.lstrip('@')}"
    if kind in NOT_PEOPLE:
        return f"{NOT_PEOPLE[kind]} {rest}"
    name = (names or {}).get(ref) or rest
    if on is not None and on == kind and kind in MENTIONS:
        return mention(kind, rest, name)
    return f"@{name.lstrip('@')}"


def entry_shown(entry: str, on: str | None = None) -> str:
    """An approvers entry as a card shows it: a ``user:ID`` of the card's platform as a mention marker,
    else as written ("group:release-managers", "user:alice")."""
    kind, sep, rest = entry.partition(":")
    if on in MENTIONS and sep and rest:
        person = rest if kind in ("user", on) else None
        if person is not None and USER_IDS[on].fullmatch(person):
            return mention(on, person, person)
    return entry


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
