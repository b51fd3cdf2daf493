"""The platform-neutral card: what a message shows, before any platform's renderer touches it.

Cards are frozen plain data. They round-trip through JSON (``to_dict`` / ``from_dict``) so the outbox
can store exactly what is to be sent and a renderer can draw it later, on any platform.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cards.mentions import plain

Colour = Literal["neutral", "info", "success", "warning", "danger"]
ButtonStyle = Literal["default", "primary", "danger"]
FieldKind = Literal["text", "multiline", "number", "select", "boolean"]

ACTION_PREFIX = "sb"


def action_id(kind: str, target: str, choice: str) -> str:
    """A button id in the one pattern every platform uses: ``sb:{kind}:{target}:{choice}``."""
    return f"{ACTION_PREFIX}:{kind}:{target}:{choice}"


def parse_action_id(value: str) -> tuple[str, str, str] | None:
    """``(kind, target, choice)`` from a button id, or None when it is not one of ours."""
    parts = value.split(":")
    if len(parts) != 4 or parts[0] != ACTION_PREFIX or not all(parts[1:]):
        return None
    return parts[1], parts[2], parts[3]


@dataclass(frozen=True)
class Confirm:
    """A confirmation dialog shown before a button acts."""

    title: str
    text: str
    confirm: str = "Yes"
    deny: str = "Cancel"


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str
    style: ButtonStyle = "default"
    confirm: Confirm | None = None


@dataclass(frozen=True)
class Field:
    """A labelled value; ``short`` fields may sit side by side."""

    label: str
    value: str
    short: bool = True


@dataclass(frozen=True)
class StepLine:
    """One line of a run's step list: an icon (✓ ⏳ ✗ ⏭ ⏸ ⊘), the step's name and a detail."""

    icon: str
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Picture:
    """An image a card carries (a run's DAG): a file upload on Slack and Discord, inline in the console."""

    name: str  # the file name, e.g. "dag-0a1b2c.png"
    alt: str  # what it shows, for screen readers and clients that show no images
    png: str  # the PNG, base64 (cards are stored as JSON); at most MAX_PICTURE bytes decoded

    def data(self) -> bytes:
        """The PNG's bytes."""
        return base64.b64decode(self.png)


MAX_PICTURE = 2_000_000  # bytes: Slack and Discord both take more; a DAG's PNG is tens of kB


@dataclass(frozen=True)
class Card:
    """A message: title, status, body text, fields, step lines, small print and buttons."""

    title: str
    text: str = ""
    status: str | None = None
    colour: Colour = "neutral"
    fields: tuple[Field, ...] = ()
    steps: tuple[StepLine, ...] = ()
    context: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    fallback: str = ""
    image: Picture | None = None

    def plain_text(self) -> str:
        """The text shown in notifications and to clients that cannot draw the card."""
        if self.fallback:
            return plain(self.fallback)
        head = f"{self.title} ({self.status})" if self.status else self.title
        if not head:
            return plain(self.text)
        return plain(f"{head}: {self.text}" if self.text else head)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        """The card a ``to_dict`` produced."""
        return cls(
            title=data["title"],
            text=data.get("text", ""),
            status=data.get("status"),
            colour=data.get("colour", "neutral"),
            fields=tuple(Field(**f) for f in data.get("fields", ())),
            steps=tuple(StepLine(**s) for s in data.get("steps", ())),
            context=tuple(data.get("context", ())),
            buttons=tuple(
                Button(
                    label=b["label"],
                    action_id=b["action_id"],
                    style=b.get("style", "default"),
                    confirm=Confirm(**b["confirm"]) if b.get("confirm") else None,
                )
                for b in data.get("buttons", ())
            ),
            fallback=data.get("fallback", ""),
            image=Picture(**data["image"]) if data.get("image") else None,
        )


@dataclass(frozen=True)
class FormField:
    """One input of a form (a Slack modal, a Discord modal, a console dialog)."""

    name: str
    label: str
    kind: FieldKind = "text"
    required: bool = False
    default: str | None = None
    options: tuple[str, ...] = ()
    help: str | None = None


@dataclass(frozen=True)
class Form:
    """A form to fill in; ``form_id`` routes the submission and ``state`` carries context (≤ 2,000 chars)."""

    form_id: str
    title: str
    fields: tuple[FormField, ...]
    submit: str = "Submit"
    state: str = ""
    intro: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Form:
        """The form a ``to_dict`` produced."""
        return cls(
            form_id=data["form_id"],
            title=data["title"],
            fields=tuple(FormField(**{**f, "options": tuple(f.get("options", ()))}) for f in data["fields"]),
            submit=data.get("submit", "Submit"),
            state=data.get("state", ""),
            intro=data.get("intro", ""),
            errors=dict(data.get("errors", {})),
        )
