"""Human durations ("90s", "10m", "1h30m", "500ms") to seconds, and back for display."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Return the number of seconds in a duration such as ``10m`` or ``1h30m``; numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or text like 30s, 10m, 2h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("a duration cannot be empty")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"'{value}' is not a duration; write it like 30s, 10m, 2h or 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """Return a short display form: ``850ms``, ``4.2s``, ``3m05s``, ``2h10m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
