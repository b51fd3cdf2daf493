"""Approval requests as their cards show them: read from storage, with people named as readers know them.

Votes and runs record people by ref ("slack:U024BE7LH"); a card should say "@alice". The name a chat user
had when they last acted is in the append-only ``action_log``, which the router writes after each action;
the person acting right now is not logged yet, so the handler names them with ``acting(who)`` around its
call to the store, and the hooks that rebuild the card inside that call read it from a context variable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from bot.identity import Identity, entry_shown, shown
from bot.storage import approvals as rows
from cards.approval_card import ApprovalView, Vote

_ACTING: ContextVar[Identity | None] = ContextVar("switchboard_acting", default=None)


@contextlib.contextmanager
def acting(who: Identity) -> Iterator[None]:
    """Name ``who`` as the person acting while the block runs (the card rebuilt meanwhile says "@name")."""
    token = _ACTING.set(who)
    try:
        yield
    finally:
        _ACTING.reset(token)


def display(ref: str, known: dict[str, str], on: str | None = None) -> str:
    """How a card names a person: "@alice" (their chat name, else the part of the ref after the colon);
    on their own platform (``on``), a mention."""
    return shown(ref, known, on)


def asked_by(meta: dict[str, Any], started_by: str, on: str | None = None) -> str:
    """The run's starter as a reader knows them: their chat name, else the ref it was started with."""
    who = meta.get("who")
    name = who.get("name") if isinstance(who, dict) else None
    return shown(started_by, {started_by: name} if name else None, on)


async def names(conn: Any, refs: Iterable[str]) -> dict[str, str]:
    """ref -> chat name, from each person's latest logged action (and the person acting now)."""
    wanted = sorted(set(refs))
    known: dict[str, str] = {}
    if wanted:
        for actor, identity in (await rows.latest_identities(conn, wanted)).items():
            if isinstance(identity, dict) and identity.get("name"):
                known[actor] = str(identity["name"])
    now = _ACTING.get()
    if now is not None:
        known[now.ref] = now.name
    return known


@dataclass(frozen=True)
class Stored:
    """One request as stored (its row, its run's row, who voted) and the view its card is drawn from."""

    row: Any
    run: Any
    view: ApprovalView
    voters: tuple[str, ...]
    known: dict[str, str]


async def read_view(conn: Any, approval_id: str, now: float, on: str | None = None) -> Stored | None:
    """One request read for its card (None when there is no such id); ``on`` is the platform the card is
    drawn for, whose own users it names with mentions."""
    found = await rows.request_and_run(conn, approval_id)
    if found is None:
        return None
    return await view_for(conn, *found, now, on)


async def view_for(conn: Any, row: Any, run: Any, now: float, on: str | None = None) -> Stored:
    """``read_view`` of a request whose row and run summary were read already (``rows.request_and_run``)."""
    votes = await rows.votes_in_card_order(conn, row.id)
    previous = await rows.previous_feedback(conn, row) if row.revision > 1 else None
    known = await names(conn, [v.actor for v in votes] + ([previous.actor] if previous else []))
    auto_at = await rows.auto_approve_due(conn, row) if row.status == "pending" else None
    view = view_of(
        SimpleNamespace(**vars(row), auto_at=auto_at),
        workflow=run.workflow,
        asked=asked_by(run.meta or {}, run.started_by, on),
        votes=tuple(Vote(display(v.actor, known, on), v.decision, v.comment) for v in votes),
        previous=Vote(display(previous.actor, known, on), "changes", previous.comment) if previous else None,
        now=now,
        on=on,
    )
    return Stored(row, run, view, tuple(v.actor for v in votes), known)


@dataclass(frozen=True)
class Request:
    """One request's row and its run's summary (``id``, ``workflow``, ``meta``, ``started_by``, ``status``),
    read in one query: what a click needs before it decides, without the card's view."""

    row: Any
    run: Any


async def read_request(conn: Any, approval_id: str) -> Request | None:
    """The request ``approval_id`` (an exact id) and its run, or None when there is no such id."""
    found = await rows.request_and_run(conn, approval_id)
    return Request(*found) if found is not None else None


def view_of(
    row: Any,
    workflow: str,
    asked: str,
    votes: tuple[Vote, ...] = (),
    previous: Vote | None = None,
    now: float = 0.0,
    on: str | None = None,
) -> ApprovalView:
    """The view of a request row (a database row, or a namespace of the dict ``add_request`` writes);
    ``on`` names the platform's own users among the approvers with mentions."""
    return ApprovalView(
        approval_id=row.id,
        run_id=row.run_id,
        workflow=workflow,
        step=row.step_key,
        title=row.title,
        asked_by=asked,
        status=row.status,
        description=row.description,
        context=dict(row.context or {}),
        kind=row.kind,
        form_fields=tuple(row.form or ()),
        approvers=tuple(row.approvers or ()),
        approvers_shown=tuple(entry_shown(a, on) for a in row.approvers or ()),
        required=row.required,
        veto=row.veto,
        allow_self_approval=row.allow_self_approval,
        expires_at=row.expires_at,
        on_timeout=row.on_timeout,
        revision=row.revision,
        request=row.request,
        max_revisions=row.max_revisions,
        can_revise=row.can_revise,
        previous_feedback=previous,
        votes=votes,
        decided_at=row.decided_at,
        auto_reason=row.auto_reason,
        auto_at=getattr(row, "auto_at", None),
        now=now,
    )
