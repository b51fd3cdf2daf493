"""Caps on text a run stores or sends: chat texts (notify, approval title, description, context) and events.

A text over its cap fails the step that built it, with the cap named, before anything is sent or
stored. An event's data is cut to its cap in ``capped_event`` (called by ``CoreBase.emit``, which
every event of every run passes through), so no timeline row can grow past it whatever put it there.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CHAT_TEXT = 40_000  # characters of a notify text or an approval's texts (Slack's own message limit)
MAX_EVENT_BYTES = 64 * 1024  # characters of one event's data, as JSON
MAX_RUN_OUTPUT_BYTES = 1024 * 1024  # characters of a run's outputs, as JSON
_KEEP = 2_000  # characters kept of a long value when an event is cut
_TAILS = ("stderr", "stdout")  # of these the end is kept: that is where the error is


def chat_text_problem(what: str, text: str) -> str | None:
    """Why ``text`` may not be sent to chat as ``what`` (e.g. "the notify text"), or None."""
    if len(text) <= MAX_CHAT_TEXT:
        return None
    return (
        f"{what} is {len(text):,} characters; the limit is {MAX_CHAT_TEXT:,} (the chat text cap). "
        "Send less, or write the data to a file and send its path"
    )


def run_outputs_problem(outputs: dict[str, Any]) -> str | None:
    """Why a run's declared ``outputs:`` may not be stored, or None."""
    size = _size(outputs)
    if size <= MAX_RUN_OUTPUT_BYTES:
        return None
    return (
        f"the run's outputs are {size:,} characters as JSON; the limit is {MAX_RUN_OUTPUT_BYTES:,} "
        "(the run outputs cap). Keep less in 'outputs:'"
    )


def run_outputs_within_cap(outputs: dict[str, Any]) -> dict[str, Any]:
    """Every step's outputs (a run with no ``outputs:``) as far as they fit, and a note for the rest."""
    if _size(outputs) <= MAX_RUN_OUTPUT_BYTES:
        return outputs
    kept: dict[str, Any] = {}
    size, left = 2, []
    for key, value in outputs.items():
        cost = _size({key: value})
        if size + cost <= MAX_RUN_OUTPUT_BYTES - 400:
            kept[key] = value
            size += cost
        else:
            left.append(key)
    kept["_cut"] = (
        f"the outputs of {len(left)} step(s) are left out: a run keeps at most {MAX_RUN_OUTPUT_BYTES:,} "
        "characters of outputs (the run outputs cap); declare 'outputs:' to choose what to keep"
    )
    return kept


def capped_event(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` if its JSON fits MAX_EVENT_BYTES; else each long value cut, with a note naming the cap."""
    if all(_small(v) for v in data.values()):  # the usual event: no JSON needed to know it fits
        return data
    size = _size(data)
    if size <= MAX_EVENT_BYTES:
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > _KEEP and key in _TAILS:
            out[key] = f"[cut from {len(text):,} characters] …" + text[-_KEEP:]
        elif len(text) > _KEEP:
            out[key] = text[:_KEEP] + f"… [cut from {len(text):,} characters]"
        else:
            out[key] = value
    out["cut"] = f"this event's data was {size:,} characters; an event keeps at most {MAX_EVENT_BYTES:,}"
    if _size(out) > MAX_EVENT_BYTES:  # very many keys: keep only the note
        return {"cut": out["cut"]}
    return out


def _small(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float or kind is bool or (kind is str and len(value) <= _KEEP)


def _size(data: Any) -> int:
    return len(json.dumps(data, default=str))
