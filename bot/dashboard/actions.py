"""What a signed-in person may change from the dashboard: steer a run (Cancel, Retry, Rollback) and decide
an approval request. Each goes through the very function chat's buttons use (``handlers.run_actions.steer``,
``handlers.approvals.decide_request``), so the permissions, M-of-N, self-approval and idempotency rules are
chat's; each is recorded in the ``action_log`` with kind ``dashboard``.

Every request is a JSON POST carrying the session's CSRF token (``X-CSRF-Token``, from the page's
``<meta name="csrf-token">``), as the console's own requests are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.errors import BadInput, Conflict, NotFound, NotPermitted, SwitchboardError, log_unexpected
from bot.identity import Identity, Place
from bot.storage.action_log import record_action
from bot.web_auth.auth import SignInRequired, WebAuth, json_body
from handlers.approvals import decide_request
from handlers.chat_text import storable
from handlers.run_actions import CHOICES, steer
from handlers.services import Services
from handlers.workflow import FINISHED, check_may_steer

log = logging.getLogger(__name__)
Act = Callable[[Identity, dict[str, Any]], Awaitable[tuple[str, str | None]]]  # -> (message, run id)
PLACE = Place("dashboard", "dashboard", channel_name="dashboard")  # for permissions and audits
DECISIONS = ("approve", "reject", "changes")
COMMENT_LIMIT = 2000
PERMISSION = {"cancel": "cancel", "retry": "run", "rollback": "rollback"}  # as ``steer`` checks them
STATUS = {BadInput: 400, NotPermitted: 403, NotFound: 404, Conflict: 409, SignInRequired: 401}


def offered(svc: Services, who: Identity, workflow: str, started_by: str, status: str) -> list[str]:
    """The run buttons that apply to a run in ``status`` and that ``who`` may press, in card order."""
    wanted = []
    if status not in FINISHED:
        wanted.append("cancel")
    if status == "failed":
        wanted.append("retry")
    if status in FINISHED and status != "compensated":
        wanted.append("rollback")
    shown = []
    for choice in wanted:
        try:
            check_may_steer(svc, workflow, started_by, PERMISSION[choice], who, PLACE)
        except NotPermitted:
            continue
        shown.append(choice)
    return shown


class Actions:
    """The dashboard's POST endpoints for one process."""

    def __init__(self, auth: WebAuth, services: Services) -> None:
        self.auth = auth
        self.svc = services

    def attach(self, app: web.Application) -> None:
        app.router.add_post("/dashboard/runs/{run_id}/{choice}", self.steer)
        app.router.add_post("/dashboard/approvals/{approval_id}/decide", self.decide)

    async def steer(self, request: web.Request) -> web.Response:
        choice = request.match_info["choice"]
        run_ref = request.match_info["run_id"]

        async def act(who: Identity, body: dict[str, Any]) -> tuple[str, str | None]:
            if choice not in CHOICES:
                raise NotFound(f"A run can be asked to {', '.join(CHOICES)}; not {choice!r}.")
            to = body.get("to")
            if to is not None and not isinstance(to, str):
                raise BadInput("'to' must be a step id.")
            row = await self.svc.runtime.store.run_row(run_ref)
            if row is None:
                raise NotFound(f"No run {run_ref!r}.")
            return await steer(self.svc, row.id, choice, who, PLACE, to=to or None), row.id

        return await self._handle(request, {choice: run_ref}, act)

    async def decide(self, request: web.Request) -> web.Response:
        approval_id = request.match_info["approval_id"]

        async def act(who: Identity, body: dict[str, Any]) -> tuple[str, str | None]:
            decision = body.get("decision")
            if decision not in DECISIONS:
                raise BadInput(f"'decision' must be one of {', '.join(DECISIONS)}.")
            comment = body.get("comment")
            if comment is not None and (not isinstance(comment, str) or len(comment) > COMMENT_LIMIT):
                raise BadInput(f"'comment' must be text of at most {COMMENT_LIMIT} characters.")
            fields = body.get("fields") or {}
            if not isinstance(fields, dict) or not all(
                isinstance(v, str) and len(v) <= COMMENT_LIMIT for v in fields.values()
            ):
                limit = COMMENT_LIMIT
                raise BadInput(f"'fields' must map each field's name to text (at most {limit} characters).")
            done = await decide_request(
                self.svc,
                who,
                approval_id,
                str(decision),
                (comment or "").strip() or None,
                fields={str(k): v for k, v in fields.items()},
                source="dashboard",
                where={"platform": "dashboard"},
            )
            return done.message, done.run_id

        return await self._handle(request, {"approval": approval_id}, act)

    async def _handle(self, request: web.Request, detail: dict[str, Any], act: Act) -> web.Response:
        try:
            session = await self.auth.require(request, write=True)
        except SwitchboardError as exc:
            return _error(exc)
        who = session.who
        outcome, run_id = "ok", None
        try:
            body = await json_body(request) if request.can_read_body else {}
            message, run_id = await act(who, body)
            return web.json_response({"message": message, "run_id": run_id})
        except SwitchboardError as exc:
            outcome = type(exc).__name__
            return _error(exc)
        except Exception:
            found = log_unexpected(log, "dashboard: %s by %s failed", request.path, who.ref)
            outcome = f"error:{found.ref}"
            return web.json_response({"error": found.message}, status=500)
        finally:
            await self._record(who, detail, outcome, run_id)

    async def _record(self, who: Identity, detail: dict[str, Any], outcome: str, run_id: str | None) -> None:
        row = {
            "at": self.svc.now(),
            "actor": who.ref,
            "identity": who.to_dict(),
            "place": PLACE.to_dict(),
            "kind": "dashboard",
            "detail": storable(detail),
            "outcome": outcome,
            "run_id": run_id,
        }
        try:
            await record_action(self.svc.runtime.store.journal, row)
        except Exception:
            log.exception("could not record dashboard action %s by %s", detail, who.ref)


def _error(exc: SwitchboardError) -> web.Response:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    return web.json_response({"error": str(exc)}, status=status)
