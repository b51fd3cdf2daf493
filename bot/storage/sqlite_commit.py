"""A journal batch committed with the stdlib ``sqlite3``: each statement compiled once, bound by hand.

SQLAlchemy's execution path costs about 0.1 ms a statement in Python (building an execution context,
processing parameters, events), several times what SQLite needs to store a step. The journal's
statements are few and fixed, so each is compiled once per set of parameter keys, with SQLAlchemy's
own bind processors (JSON with the engine's serializer, booleans, floats) and column defaults, and
executed on the connection's ``sqlite3`` handle. A statement this cannot bind exactly as SQLAlchemy
would (Python-callable defaults, RETURNING, expanding IN lists) is reported as unfit, and the batch is
committed through SQLAlchemy instead, so the rows stored are the same either way.

The redaction rule holds here too: every INSERT and UPDATE is masked with the known secrets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Delete, Insert, Update

from bot.storage import redaction

CACHE_LIMIT = 512
_PARAM, _CONSTANT = 0, 1


class Unfit(Exception):
    """This statement must go through SQLAlchemy (the batch is committed there instead)."""


@dataclass(frozen=True)
class Plan:
    """One statement compiled for one set of parameter keys: its SQL and how to build each row's values."""

    sql: str
    slots: tuple[
        tuple[int, Any, Callable[[Any], Any] | None], ...
    ]  # (param or constant, key or value, processor)
    masks: bool  # an INSERT or UPDATE: its values pass the redaction masks

    def row(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The positional values for one parameter dict."""
        out = []
        for kind, ref, process in self.slots:
            value = params[ref] if kind == _PARAM else ref
            out.append(process(value) if process is not None else value)
        return tuple(out)


class Plans:
    """Compiled statements, keyed by the statement object and the parameter keys it is given."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._plans: dict[tuple[Executable, tuple[str, ...]], Plan | Unfit] = {}

    def plan(self, stmt: Executable, keys: tuple[str, ...]) -> Plan:
        """The plan of ``stmt`` with these parameter keys (raises ``Unfit``, remembered too)."""
        found = self._plans.get((stmt, keys))
        if found is None:
            if len(self._plans) >= CACHE_LIMIT:
                self._plans.clear()  # statements built per call would otherwise pile up
            try:
                found = _compile(stmt, keys, self.dialect)
            except Unfit as why:
                found = why
            self._plans[(stmt, keys)] = found
        if isinstance(found, Unfit):
            raise found
        return found


def _compile(stmt: Executable, keys: tuple[str, ...], dialect: Dialect) -> Plan:
    if not isinstance(stmt, Insert | Update | Delete):
        raise Unfit("not an INSERT, UPDATE or DELETE")
    if getattr(stmt, "_returning", ()):
        raise Unfit("RETURNING")
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    sql: str = compiled.string
    if "POSTCOMPILE" in sql or compiled.positiontup is None:
        raise Unfit("expanding parameters")
    prefetch = {col.key: col for col in [*compiled.insert_prefetch, *compiled.update_prefetch]}
    processors = compiled._bind_processors
    slots: list[tuple[int, Any, Callable[[Any], Any] | None]] = []
    for name in compiled.positiontup:
        process = processors.get(name)
        if name in keys:
            slots.append((_PARAM, name, process))
            continue
        column = prefetch.get(name)
        if column is not None:
            default = column.default if isinstance(stmt, Insert) else column.onupdate
            if default is None or not default.is_scalar:
                raise Unfit(f"a Python default for {name}")
            slots.append((_CONSTANT, default.arg, process))
            continue
        bind = compiled.binds.get(name)
        if bind is None or bind.required or bind.callable is not None:
            raise Unfit(f"no value for {name}")
        slots.append((_CONSTANT, bind.effective_value, process))
    return Plan(sql, tuple(slots), masks=not isinstance(stmt, Delete))


def commit(
    raw: sqlite3.Connection,
    plans: Plans,
    ops: Sequence[tuple[Executable, Any]],
    lease_check: tuple[list[str], str] | None,
) -> list[str]:
    """Store ``ops`` in one IMMEDIATE transaction; returns the held runs not found (then nothing is stored).

    Raises ``Unfit`` before anything is written when a statement must go through SQLAlchemy, and the
    DB-API's own errors (as SQLAlchemy's wrappers) for the rest.
    """
    bound = [_bind(plans, stmt, params) for stmt, params in ops]
    hide = redaction.known()
    try:
        raw.execute("BEGIN IMMEDIATE")
        try:
            if lease_check is not None:
                held, owner = lease_check
                marks = ", ".join("?" * len(held))
                found = {
                    r[0]
                    for r in raw.execute(
                        f"SELECT id FROM runs WHERE id IN ({marks}) AND lease_owner = ?", (*held, owner)
                    )
                }
                lost = sorted(set(held) - found)
                if lost:
                    raw.execute("ROLLBACK")
                    return lost
            for plan, rows in bound:
                if hide is not None and plan.masks:
                    rows = [redaction.masked_row(hide, r) for r in rows]
                if len(rows) == 1:
                    raw.execute(plan.sql, rows[0])
                else:
                    raw.executemany(plan.sql, rows)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(  # the same exception types as SQLAlchemy's own path
            "journal commit", None, exc, sqlite3.Error
        ) from exc
    return []


def _bind(plans: Plans, stmt: Executable, params: Any) -> tuple[Plan, list[tuple[Any, ...]]]:
    many = params if isinstance(params, list) else [params or {}]
    keys = tuple(many[0])
    plan = plans.plan(stmt, keys)
    if len(many) > 1 and any(tuple(p) != keys for p in many):
        raise Unfit("parameter sets with different keys")
    return plan, [plan.row(p) for p in many]
