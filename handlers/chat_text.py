"""Text from chat a handler must not see: too long, or not valid Unicode. Found by the router first.

A command's text or a form's value is at most MAX_INPUT_TEXT characters, whatever the platform allows
(the console allows anything). A JSON payload can carry a lone surrogate (``"\\ud800"``), which Python
decodes into a string that no database, log file or chat API can encode as UTF-8. Python strings hold
code points, so a valid pair is already one character: any surrogate left in a string stands alone.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_INPUT_TEXT = 40_000  # characters of one command's text or one form value


def refusal_of(value: Any) -> str | None:
    """The reply to chat input that may not reach a handler (too long, or invalid Unicode), or None."""
    longest = _longest(value)
    if longest > MAX_INPUT_TEXT:
        return (
            f"That is {longest:,} characters; a command or a form field takes at most "
            f"{MAX_INPUT_TEXT:,} (the input text cap). Send less, or put the data where a workflow "
            "can read it."
        )
    problem = invalid_unicode(value)
    return refusal(problem) if problem is not None else None


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return max((_longest(v) for v in value), default=0)
    return 0


def invalid_unicode(value: Any) -> str | None:
    """What is wrong with the first invalid character of ``value`` (text, or lists and dicts of it)."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found is None:
            return None
        return f"U+{ord(found.group()):04X}, a lone surrogate"
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        for item in value:
            problem = invalid_unicode(item)
            if problem is not None:
                return problem
    return None


def storable(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD, so it can be logged and stored."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def refusal(problem: str) -> str:
    """The reply to a message that is not valid Unicode."""
    return (
        f"Your message holds a character that is not valid Unicode ({problem}), so it was not run. "
        "Retype the text, or copy it again from where it came from, and send it again."
    )
