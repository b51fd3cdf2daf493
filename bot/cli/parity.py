"""What the CLI checks as chat does: a form approval's fields, and who may retry a run.

The rules themselves live with the chat handlers (``handlers.approval_forms``, ``handlers.workflow``); this
module only turns command-line arguments into their inputs and their refusals into one clear message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.errors import BadInput
from bot.identity import Identity, Place, canonical
from bot.storage.approvals import request_row
from bot.storage.run_rows import RunRow
from engine.inputs import parse_pairs
from engine.loader import WorkflowInvalid, WorkflowNotFound, find_workflow, load_workflow
from engine.spec import Permissions
from handlers.approval_forms import specs, typed_values
from handlers.workflow import check_steer_permissions


async def form_values(
    engine: AsyncEngine, approval_id: str, decision: str, fields: list[str]
) -> dict[str, Any] | None:
    """The typed ``--field`` values of a form approval being approved; refused if one is missing or bad."""
    try:
        raw = parse_pairs(fields)
    except ValueError as exc:
        raise BadInput(f"--field {exc}; give each field as --field NAME=VALUE") from None
    async with engine.connect() as conn:
        request = await request_row(conn, approval_id)
    form = request.form if request is not None and request.kind == "form" else None
    if form is None or decision != "approve":
        if raw:
            raise BadInput(f"--field is only for approving a form approval; request {approval_id} is not one")
        return None
    declared = specs(form)
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        names = ", ".join(unknown)
        raise BadInput(f"request {approval_id} has no field {names}; its fields: {_names(declared)}")
    values, errors = typed_values(form, raw)
    if errors:
        problems = "; ".join(f"{name}: {why}" for name, why in errors.items())
        raise BadInput(
            f"request {approval_id} is a form: {problems} (give each with --field NAME=VALUE; "
            f"fields: {_names(declared)})"
        )
    return values


def person(settings: Settings, entry: str, groups: list[str] | tuple[str, ...] = ()) -> Identity:
    """Who ``--as NAME`` names, exactly as the console (or the platform in ``slack:U…``) would.

    The one place the CLI turns a name into a person: ``alice``, ``@alice`` and ``console:alice`` are the
    console user ``console:alice`` with their SWITCHBOARD_CONSOLE_USERS groups, plus any ``--group``.
    """
    ref = canonical(entry)
    platform, _, user_id = ref.partition(":")
    if not user_id:
        raise BadInput(f"--as {entry!r}: name a person, e.g. --as alice or --as slack:U024BE7LH")
    known = settings.console_users.get(user_id, []) if platform == "console" else []
    workspace = "console" if platform == "console" else ""
    return Identity(
        platform, workspace, user_id, user_id, frozenset([*known, *groups]), ref in settings.admins
    )


def check_may_retry(settings: Settings, row: RunRow, who: Identity) -> None:
    """The Retry button's rule: the starter, an admin, or whom the workflow's ``run`` permission names."""
    check_may(settings, row, who, "run")


def check_may(settings: Settings, row: RunRow, who: Identity, what: str, doing: str | None = None) -> None:
    """The card buttons' rule for ``what`` (run, cancel, rollback): the starter, an admin, or whom the
    workflow's permission names; ``doing`` names a request that follows it (a rewind follows rollback)."""
    if who.ref == row.started_by or who.admin:
        return
    try:
        loaded = load_workflow(find_workflow(settings.workflows_dir, row.workflow))
        perms: Permissions | None = loaded.spec.permissions
    except (WorkflowNotFound, WorkflowInvalid):
        perms = None
    check_steer_permissions(perms, row.workflow, what, who, Place("cli", "cli"), doing)


def _names(declared: dict[str, Any]) -> str:
    return ", ".join(f"{n} (required)" if s.required else n for n, s in declared.items()) or "none"
