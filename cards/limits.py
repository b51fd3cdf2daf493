"""Shared helpers for the renderers: cutting text and lists to a platform's limits, visibly.

Every renderer cuts the same way, so a reader sees the same signs on every platform: a clipped text ends
with "…", and a list that did not fit ends with a line such as "…and 38 more steps". Nothing is dropped
silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

ELLIPSIS = "…"
YES_WORDS = frozenset({"true", "yes", "y", "1", "on"})


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with "…" when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def more_line(count: int, noun: str) -> str:
    """The line that stands for items left out: "…and 3 more steps"."""
    return f"{ELLIPSIS}and {count} more {noun}"


def take(
    items: Sequence[T], limit: int, noun: str, *, line_takes_a_slot: bool = True
) -> tuple[list[T], str | None]:
    """The first items that fit in ``limit`` slots, and "…and N more {noun}" when some were left out.

    With ``line_takes_a_slot`` the more-line is shown in the same list (a context element, a field), so one
    slot is kept free for it; otherwise it goes elsewhere and all ``limit`` slots hold items.
    """
    if len(items) <= limit:
        return list(items), None
    keep = max(limit - 1, 0) if line_takes_a_slot else max(limit, 0)
    return list(items[:keep]), more_line(len(items) - keep, noun)


def fit(texts: Sequence[str], budget: int, noun: str, sep: int = 1) -> tuple[list[str], str | None]:
    """The leading texts whose total length (``sep`` characters between them) fits ``budget``.

    When some are left out, the kept texts plus the separator and the more-line still fit ``budget``.
    """
    total = sum(len(t) for t in texts) + sep * max(len(texts) - 1, 0)
    if total <= budget:
        return list(texts), None
    reserve = len(more_line(len(texts), noun)) + sep
    kept: list[str] = []
    used = 0
    for text in texts:
        cost = len(text) + (sep if kept else 0)
        if used + cost + reserve > budget:
            break
        kept.append(text)
        used += cost
    return kept, more_line(len(texts) - len(kept), noun)


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive groups of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def is_yes(value: str | None) -> bool:
    """Whether a form default such as "true", "yes" or "1" means yes (booleans are "true"/"false")."""
    return value is not None and value.strip().lower() in YES_WORDS
