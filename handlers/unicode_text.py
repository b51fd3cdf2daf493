"""Text from chat that is not valid Unicode: found before a handler sees it, and made storable for the log.

A JSON payload can carry a lone surrogate (``"\\ud800"``), which Python decodes into a string that no
database, log file or chat API can encode as UTF-8. Python strings hold code points, so a valid pair
is already one character: any surrogate left in a string stands alone.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


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
