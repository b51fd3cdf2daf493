"""What handlers receive and return: typed and platform-neutral, so a handler never sees a payload."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.identity import Identity, Place
from cards.model import Card, Form


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
