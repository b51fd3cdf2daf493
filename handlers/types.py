"""What handlers receive and return: typed and platform-neutral, so a handler never sees a payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cards.model import Card, Form


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


@dataclass(frozen=True)
class Command:
    """A slash command: ``/workflow run deploy env=prod`` is name "workflow", text "run deploy env=prod"."""

    who: Identity
    where: Place
    name: str
    text: str


@dataclass(frozen=True)
class Click:
    """A button press; ``action_id`` follows ``sb:{kind}:{target}:{choice}``."""

    who: Identity
    where: Place
    action_id: str
    message: str | None = None  # the platform's ref of the message holding the button


@dataclass(frozen=True)
class Submission:
    """A filled-in form; ``values`` are the raw texts by field name, ``state`` the form's carried context."""

    who: Identity
    where: Place
    form_id: str
    values: dict[str, str]
    state: str = ""


@dataclass(frozen=True)
class Autocomplete:
    """A request for suggestions while typing (Discord's autocomplete)."""

    who: Identity
    where: Place
    command: str
    option: str
    partial: str


@dataclass(frozen=True)
class Say:
    """Reply with text and/or a card; ephemeral replies are seen only by the person who asked."""

    text: str | None = None
    card: Card | None = None
    ephemeral: bool = True

    def plain_text(self) -> str:
        """Text for platforms or clients that cannot draw the card."""
        if self.text:
            return self.text
        return self.card.plain_text() if self.card else ""


@dataclass(frozen=True)
class ShowForm:
    """Open a form (a modal) for the person who asked."""

    form: Form


@dataclass(frozen=True)
class FieldErrors:
    """Keep a submitted form open, with a message under each named field."""

    errors: dict[str, str] = field(default_factory=dict)


Reply = Say | ShowForm | FieldErrors | None
