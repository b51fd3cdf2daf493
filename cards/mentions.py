"""People named in card text: a mention marker that each renderer draws its own way.

A card is built before it is drawn, so a person is written into its text as a marker holding their
platform, user id and display name. Slack draws a marker of a Slack user as ``<@U024BE7LH>`` and Discord
one of a Discord user as ``<@80351110224678912>`` (the platforms' own mentions: a name that follows
renames, and a profile on click); everything else, the console, e-mail and plain-text fallbacks, shows
``@name``. The markers are private-use characters, which Slack's escaping leaves alone, so the mention is
put in after user text is escaped and cannot be forged by it.
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

START, SEP, END = "\ue000", "\ue001", "\ue002"
_MARKERS = re.compile(f"[{START}{SEP}{END}]")
_TOKEN = re.compile(f"{START}([a-z]+):([^{SEP}{END}]+){SEP}([^{START}{END}]*){END}")
_CUT = re.compile(f"{START}[^{END}]*$")  # a marker cut short by clipping: drop it
# What each platform's user ids look like; anything else is shown by name, never pasted into markup.
USER_IDS = {"slack": re.compile(r"[UWB][A-Z0-9]{2,20}"), "discord": re.compile(r"\d{5,25}")}

T = TypeVar("T")


def mention(platform: str, user_id: str, name: str) -> str:
    """The marker for a person: drawn as a mention on ``platform``, as ``@name`` elsewhere."""
    return f"{START}{platform}:{_MARKERS.sub('', user_id)}{SEP}{_MARKERS.sub('', name).lstrip('@')}{END}"


def resolve(text: str, platform: str | None) -> str:
    """``text`` with each marker drawn for ``platform`` (None: every person as ``@name``)."""
    if START not in text:
        return text

    def draw(found: re.Match[str]) -> str:
        kind, user_id, name = found.group(1), found.group(2), found.group(3)
        pattern = USER_IDS.get(kind)
        if kind == platform and pattern is not None and pattern.fullmatch(user_id):
            return f"<@{user_id}>"
        return f"@{name or user_id}"

    drawn = _TOKEN.sub(draw, text)
    return _MARKERS.sub("", _CUT.sub("…", drawn))


def plain(text: str) -> str:
    """``text`` with every person as ``@name``."""
    return resolve(text, None)


def plain_everywhere(value: T) -> T:
    """A card (or any frozen dataclass of strings, tuples and dataclasses) with every marker as ``@name``."""
    return _walk(value)  # type: ignore[no-any-return]


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, tuple):
        return tuple(_walk(v) for v in value)
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _walk(getattr(value, f.name)) for f in fields(value) if f.init})
    return value
