"""The database's last line of defence: what is written is masked with every secret this process knows.

The engine masks secrets out of all a run stores and sends, and ``validate`` keeps them out of shown
fields. Text also reaches the database by other ways (a conversation's transcript, a reply quoting a
run), so every INSERT and UPDATE passes its parameters through the masks of the secrets that the
process has read for a workflow (``read``: when it is listed or loaded, and when a run starts or
resumes), whatever table they go to. The process's log handlers mask them too (``LogMask``): an
action's exception can quote a value it was given.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.masking import MIN_ENCODED, Masker, masker
from engine.spec import Workflow

_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def read(spec: Workflow) -> dict[str, str]:
    """The values of a workflow's secrets, from the environment; remembered, so every write masks them."""
    values = {name: os.environ.get(name, "") for name in spec.secrets}
    remember(values.values())
    return values


def remember(values: Iterable[str]) -> None:
    """Add secret values (read from the environment for a workflow) to those every write is masked with.

    A value shorter than ``MIN_ENCODED`` is left to the engine's masks of the run's own records: here it
    would rewrite ordinary words in every row (a secret 'run' would turn each 'running' into '***ning').
    """
    global _known
    new = {v for v in values if len(v) >= MIN_ENCODED} - _known
    if new:
        with _lock:
            _known = _known | new


def known() -> Masker | None:
    """The masker of every secret remembered so far, or None when there is none."""
    return masker(_known) if _known else None


class LogMask(logging.Filter):
    """A log handler's filter that masks the known secrets out of each message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        hide = known()
        if hide is None:
            return True
        record.msg, record.args = hide.text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = hide.text(record.exc_text)
        return True


def install(engine: AsyncEngine | sa.Engine) -> None:
    """Mask the parameters of every INSERT and UPDATE on ``engine`` (once per engine)."""
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if not event.contains(target, "before_cursor_execute", _before):
        event.listen(target, "before_cursor_execute", _before, retval=True)


def _before(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    hide = known()
    if hide is None or not parameters or statement.lstrip()[:6].upper() not in ("INSERT", "UPDATE"):
        return statement, parameters
    if executemany:
        return statement, type(parameters)(_masked(hide, p) for p in parameters)
    return statement, _masked(hide, parameters)


def masked_row(hide: Masker, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """One row's positional parameters, masked (for writes that bypass SQLAlchemy's events)."""
    return tuple(_one(hide, v) for v in values)


def _masked(hide: Masker, params: Any) -> Any:
    if isinstance(params, dict):
        return {k: _one(hide, v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return type(params)(_one(hide, v) for v in params)
    return params


def _one(hide: Masker, value: Any) -> Any:
    if isinstance(value, str):
        masked = hide.text(value)
        if masked == value or value[:1] not in ("{", "[", '"'):
            return masked
        try:  # stored JSON: mask inside its strings, so the text stays valid JSON
            data = json.loads(value)
        except ValueError:
            return masked
        return json.dumps(hide.value(data), default=str, ensure_ascii=False)
    if isinstance(value, dict | list):
        return hide.value(value)
    return value
