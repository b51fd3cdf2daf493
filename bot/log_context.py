"""Structured logs: the ids a log line is about (run, step, conversation, platform), carried in context
variables, and the formatter that writes one JSON object a line (``SWITCHBOARD_LOG_FORMAT=json``)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

FIELDS = ("run_id", "step", "conversation_id", "platform", "ref")
Fields = dict[str, str] | None
_bound: contextvars.ContextVar[Fields] = contextvars.ContextVar("switchboard_log", default=None)


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Every log line inside the block (and in tasks it starts) carries ``fields``."""
    token = _bound.set({**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def bind(**fields: str | None) -> None:
    """Add ``fields`` for the rest of the current task (a task's context is its own copy)."""
    _bound.set({**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the bound ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_bound.get() or {})
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)
