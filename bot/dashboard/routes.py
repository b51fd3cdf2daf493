"""The dashboard's pages on the shared aiohttp server: ``/dashboard`` (the runs),
``/dashboard/runs/ID`` (one run: its DAG, steps, outputs, approvals and events), the small JSON
state that a run's page polls while the run goes on, ``/dashboard/conversations`` (the figures),
``/dashboard/workflows`` and ``/dashboard/runners`` (the remote runners and the jobs they hold).

Same sign-in as the console (``bot.web_auth``): a page asked without a session signs in as the console
does (dev mode: the picker's remembered or first user; oidc: the provider), then comes back. Dev mode's
sign-in trusts whoever connects, so the dashboard is off unless the server listens on loopback; and
it is off with the console, whose ``/auth`` routes it signs in through.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from bot.conversations.outbound import agent_entries, sees_the_queue
from bot.dashboard.actions import PLACE, Actions, offered
from bot.dashboard.approvals_page import load_approvals
from bot.dashboard.conversations_page import load_conversations
from bot.dashboard.queries import RunFilter, runs_page
from bot.dashboard.run_page import RunPage, event_summary, load_run
from bot.dashboard.runners_page import load_runners
from bot.dashboard.workflows_page import FIGURES_OVER, load_workflows
from bot.errors import BadInput, NotPermitted, SwitchboardError, log_unexpected
from bot.identity import describe
from bot.runtime.costs import Prices
from bot.web_auth.auth import SignInRequired, WebAuth
from bot.web_auth.guard import is_loopback
from bot.web_auth.people import Directory
from bot.web_auth.sessions import Session
from engine.state import RunStatus
from handlers.services import Services

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATUSES = [str(s) for s in RunStatus]
Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class Dashboard:
    """The dashboard's handlers for one process."""

    def __init__(
        self,
        services: Services,
        directories: Mapping[str, Directory],
    ) -> None:
        self.settings = settings = services.settings
        self.prices = Prices.from_settings(settings)
        self.svc = services
        self.store = services.runtime.store
        self.engine = self.store.engine
        self.clock = services.runtime.clock
        self.auth = WebAuth(settings, self.engine, self.clock, directories)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = when
        self.templates.filters["seconds"] = seconds
        self.templates.filters["iso"] = lambda at: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        self.templates.globals["summary"] = event_summary

    def attach(self, app: web.Application) -> None:
        if not self.settings.console:
            log.info(
                "dashboard off: it signs people in through the console's /auth routes (SWITCHBOARD_CONSOLE)"
            )
            return
        if self.settings.auth == "dev" and not is_loopback(self.settings.host):
            log.warning(
                "dashboard off: SWITCHBOARD_AUTH=dev trusts whoever connects, and SWITCHBOARD_HOST=%s "
                "is not loopback; set SWITCHBOARD_AUTH=oidc to serve /dashboard on the network",
                self.settings.host,
            )
            return
        app.router.add_get("/dashboard", self._page(self.runs))
        app.router.add_get("/dashboard/runs/{run_id}", self._page(self.run))
        app.router.add_get("/dashboard/runs/{run_id}/state", self.state)
        app.router.add_get("/dashboard/approvals", self._page(self.approvals))
        app.router.add_get("/dashboard/conversations", self._page(self.conversations))
        app.router.add_get("/dashboard/workflows", self._page(self.workflows))
        app.router.add_get("/dashboard/runners", self._page(self.runners))
        Actions(self.auth, self.svc).attach(app)
        app.router.add_static("/dashboard/static/", HERE / "static", append_version=False)

    # -- pages ---------------------------------------------------------------------------------------

    async def runs(self, request: web.Request, session: Session) -> web.StreamResponse:
        q = request.query
        try:
            only = run_filter(q)
            number = int(q.get("page") or "1")
            if number < 1:
                raise ValueError
        except BadInput as exc:
            return self._html("problem.html", session, code=400, message=str(exc))
        except ValueError:
            return self._html("problem.html", session, code=400, message="'page' must be 1 or more.")
        found = await runs_page(self.engine, number, only)
        return self._html(
            "runs.html",
            session,
            found=found,
            query=q,
            more_query=lambda page: urlencode({**{k: v for k, v in q.items() if v}, "page": page}),
            statuses=STATUSES,
            now=self.clock(),
        )

    async def run(self, request: web.Request, session: Session) -> web.StreamResponse:
        found = await load_run(self.store, request.match_info["run_id"], self.prices)
        if found is None:
            return self._html(
                "problem.html",
                session,
                code=404,
                message=f"No run {request.match_info['run_id']!r}: check the id (a unique prefix will do).",
            )
        return self._html(
            "run.html", session, page=found, now=self.clock(), actions=self._offered(found, session)
        )

    async def approvals(self, request: web.Request, session: Session) -> web.StreamResponse:
        found = await load_approvals(self.svc, session.who)
        return self._html("approvals.html", session, found=found, now=self.clock())

    async def conversations(self, request: web.Request, session: Session) -> web.StreamResponse:
        if not sees_the_queue(self.settings, session.who):
            agents = describe(agent_entries(self.settings))
            message = f"Only agents see the queue and the conversation figures. Agents: {agents}."
            return self._html("problem.html", session, code=403, message=message)
        found = await load_conversations(self.svc)
        return self._html("conversations.html", session, found=found, now=self.clock(), share=share)

    async def workflows(self, request: web.Request, session: Session) -> web.StreamResponse:
        lines = await load_workflows(self.svc, session.who, PLACE)
        return self._html("workflows.html", session, lines=lines, over=FIGURES_OVER)

    async def runners(self, request: web.Request, session: Session) -> web.StreamResponse:
        found = await load_runners(self.svc, self.clock())
        return self._html("runners.html", session, found=found, now=self.clock())

    async def state(self, request: web.Request) -> web.StreamResponse:
        """What a run's page redraws each second while the run goes on: node states and fragments."""
        try:
            session = await self.auth.require(request)
        except SignInRequired as exc:
            return web.json_response({"error": str(exc)}, status=401)
        except NotPermitted as exc:
            return web.json_response({"error": str(exc)}, status=403)
        found = await load_run(self.store, request.match_info["run_id"], self.prices)
        if found is None:
            return web.json_response({"error": "No such run."}, status=404)
        now = self.clock()
        part = {"page": found, "now": now, "me": session.who, "actions": self._offered(found, session)}
        return web.json_response(
            {
                "status": found.run.status,
                "finished": found.finished,
                "nodes": found.nodes,
                "steps": self.templates.get_template("_steps.html").render(part),
                "outputs": self.templates.get_template("_outputs.html").render(part),
                "events": self.templates.get_template("_events.html").render(part),
                "approvals": self.templates.get_template("_approvals.html").render(part),
                "summary": self.templates.get_template("_summary.html").render(part),
                "actions": self.templates.get_template("_actions.html").render(part),
            },
            headers={"Cache-Control": "no-store"},
        )

    def _offered(self, page: RunPage, session: Session) -> list[str]:
        row = page.run
        return offered(self.svc, session.who, row.workflow, row.started_by, row.status)

    # -- sign-in and rendering -----------------------------------------------------------------------

    def _page(self, call: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                session = await self.auth.require(request)
            except SignInRequired:
                if self.auth.mode == "oidc":
                    raise web.HTTPFound("/auth/login") from None
                return self._html("sign_in.html", None, code=401, users=list(self.settings.console_users))
            except NotPermitted as exc:
                return web.Response(status=403, text=str(exc))
            try:
                return await call(request, session)
            except SwitchboardError as exc:
                return self._html("problem.html", session, code=400, message=str(exc))
            except Exception:
                found = log_unexpected(log, "dashboard: %s %s failed", request.method, request.path)
                return self._html("problem.html", session, code=500, message=found.message)

        return handle

    def _html(self, name: str, session: Session | None, code: int = 200, **values: Any) -> web.Response:
        me = session.who if session is not None else None
        csrf = session.csrf if session is not None else ""
        queue = session is not None and sees_the_queue(self.settings, session.who)
        body = self.templates.get_template(name).render(
            me=me, csrf=csrf, mode=self.auth.mode, sees_queue=queue, **values
        )
        response = web.Response(status=code, text=body, content_type="text/html")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "no-store"
        return response


def run_filter(query: Mapping[str, str]) -> RunFilter:
    """The runs list's filters from its query string; a status or date that cannot be is ``BadInput``."""
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadInput(f"There is no run status {status!r}; pick one of {', '.join(STATUSES)}.")
    since = query.get("since") or None
    try:
        start = calendar.timegm(time.strptime(since, "%Y-%m-%d")) if since else None
    except ValueError:
        raise BadInput(f"'since' must be a date such as 2026-01-31, not {since!r}.") from None
    return RunFilter(status, query.get("workflow") or None, (query.get("by") or "").strip() or None, start)


def when(at: float | None) -> str:
    """A time as UTC text, to the second."""
    if at is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def seconds(value: float | None) -> str:
    """A duration for people: 0.4 s, 12 s, 3 min 5 s, 2 h 4 min."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def share(value: object) -> str:
    """A share of 0-1 as a percentage; "—" when there is nothing to measure."""
    return "—" if not isinstance(value, int | float) else f"{value:.0%}"
