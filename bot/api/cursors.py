"""Opaque cursors for pagination: the position (created_at, id) of the last run of a page."""

from __future__ import annotations

import base64
import binascii
import json

from bot.errors import BadInput


def encode(created_at: float, run_id: str) -> str:
    """The cursor after a run."""
    raw = json.dumps([created_at, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[float, str]:
    """The position a cursor names; a cursor this API did not make is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, run_id = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(run_id, str):
            raise ValueError(cursor)
        return float(at), run_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadInput(
            f"The cursor {cursor[:40]!r} is not one this API gave; pass next_cursor from the previous page."
        ) from None
