"""The page an approval e-mail's link opens: GET shows the request and a confirm button, POST decides.

Opening a link never votes: mail scanners and link previews fetch every link in a message. The POST
carries a CSRF token bound to the link (and a browser's Origin must be this server). The vote counts for
the approver the link was sent to, through the same rules as chat (self-approval, approvers, quorum,
revisions), audited with source ``email``; the link's use commits with the vote, so it counts once.
Someone signed in as another person is refused rather than voting under the link's name.
"""

from __future__ import annotations

import hmac
import logging
from html import escape
from typing import TYPE_CHECKING

from aiohttp import web

from bot.approvals.links import Link, LinkProblem, link_id
from bot.approvals.views import Stored, acting, read_view
from bot.errors import BadInput, Conflict, NotFound, NotPermitted, SwitchboardError, log_unexpected
from bot.identity import Identity
from bot.storage.email_links import use_of
from bot.web_auth.people import console_user
from cards.approval_card import approval_card
from cards.model import Card

if TYPE_CHECKING:
    from bot.platforms.email.adapter import EmailAdapter

log = logging.getLogger(__name__)
PATH = "/approvals/email/{token}"
COMMENT_MAX = 2000


class Refused(Exception):
    """A page that says why the link cannot be used, with its HTTP status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class ConfirmPage:
    """The routes of the confirmation page."""

    def __init__(self, adapter: EmailAdapter) -> None:
        self.adapter = adapter
        self.ctx = adapter.ctx

    def attach(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.show)
        app.router.add_post(PATH, self.confirm)

    async def show(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            link = await self._usable(request, token)
            stored = await self._pending(link)
        except Refused as refused:
            return _page(refused.title, f"<p>{escape(refused.message)}</p>", refused.status)
        card = approval_card(stored.view)
        verb = link.decision.capitalize()
        body = _details(card) + (
            f"<form method='post'><input type='hidden' name='csrf' value='{await self.adapter.csrf(token)}'>"
            f"<p>Deciding as <b>{escape(link.actor)}</b> ({escape(link.address)}).</p>"
            "<p><label>Comment (optional)<br><textarea name='comment' rows='3' cols='60' "
            f"maxlength='{COMMENT_MAX}'></textarea></label></p>"
            f"<p><button type='submit' id='confirm' class='{link.decision}'>Confirm: {verb}</button></p>"
            "</form>"
        )
        return _page(f"{verb}: {stored.view.title}", body, 200)

    async def confirm(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            link = await self._usable(request, token)
            form = await request.post()
            sent = form.get("csrf")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, await self.adapter.csrf(token)):
                raise Refused(
                    403, "Not confirmed", "This form was not sent from its page; open the link again."
                )
            self.adapter.auth.check_origin(request)
            comment = form.get("comment")
            text = comment.strip()[:COMMENT_MAX] if isinstance(comment, str) and comment.strip() else None
            stored = await self._pending(link)
            message = await self._decide(link, text, stored.row.id)
        except Refused as refused:
            return _page(refused.title, f"<p>{escape(refused.message)}</p>", refused.status)
        except SwitchboardError as exc:
            return _page("Not counted", f"<p>{escape(str(exc))}</p>", _status(exc))
        except Exception:
            ref = log_unexpected(log, "email: deciding by link failed (%s)", request.path[:60])
            return _page("Something went wrong", f"<p>{escape(ref.message)}</p>", 500)
        return _page("Thank you", f"<p id='outcome'>{escape(message)}</p>", 200)

    async def _usable(self, request: web.Request, token: str) -> Link:
        """The link, valid, unused and not someone else's while another person is signed in."""
        try:
            link = (await self.adapter.links()).read(token, self.ctx.clock())
        except LinkProblem as problem:
            status = 410 if problem.kind == "expired" else 404
            title = "Link expired" if problem.kind == "expired" else "Not a Switchboard link"
            raise Refused(status, title, problem.message) from None
        async with self.ctx.engine.connect() as conn:
            used = await use_of(conn, link_id(link))
        if used is not None:
            raise Refused(
                410, "Link already used", f"This link was used already: it recorded {used.decision}."
            )
        session = await self.adapter.auth.session(request)
        if session is not None and session.who.ref != link.actor:
            raise Refused(
                403,
                "Someone else's link",
                f"This link was sent to {link.address} for {link.actor}, but you are signed in as "
                f"{session.who.ref}. Use the link from your own e-mail, or sign out first.",
            )
        return link

    async def _pending(self, link: Link) -> Stored:
        async with self.ctx.engine.connect() as conn:
            stored = await read_view(conn, link.approval_id, self.ctx.clock())
        if stored is None:
            raise Refused(404, "No such request", f"There is no approval request {link.approval_id}.")
        if not stored.view.pending:
            raise Refused(409, "Already decided", approval_card(stored.view).text or stored.view.status)
        if link.decision == "approve" and stored.view.kind == "form":
            raise Refused(
                409, "Details needed", "Approving this request asks for details; approve it in chat instead."
            )
        return stored

    async def _decide(self, link: Link, comment: str | None, approval_id: str) -> str:
        who = await self._identity(link.actor)
        runtime = self.ctx.router.services.runtime
        with acting(who):
            outcome = await runtime.decide(
                approval_id,
                who.ref,
                link.decision,
                comment,
                groups=tuple(sorted(who.groups)),
                source="email",
                aliases=(who.user_id, who.name),
                name=f"@{who.name}",
                where={"address": link.address, "link": link_id(link)},
                link=link_id(link),
            )
        return outcome.message

    async def _identity(self, ref: str) -> Identity:
        """The approver the link names, with their groups (the console's settings, Slack's directory)."""
        platform, _, user = ref.partition(":")
        if platform == "console":
            try:
                return console_user(self.ctx.settings, user)
            except BadInput:
                pass
        lookup = self.ctx.directories.get(platform)
        if lookup is not None:
            return await lookup("", user, user)
        return Identity(platform, "", user, user, frozenset(), ref in self.ctx.settings.admins)


def _status(exc: SwitchboardError) -> int:
    return {NotPermitted: 403, NotFound: 404, Conflict: 409}.get(type(exc), 400)


def _details(card: Card) -> str:
    rows = "".join(f"<tr><th>{escape(f.label)}</th><td>{escape(f.value)}</td></tr>" for f in card.fields)
    text = "<br>".join(escape(line) for line in card.text.splitlines())
    notes = "".join(f"<p class='note'>{escape(c)}</p>" for c in card.context)
    return f"<p>{text}</p><table>{rows}</table>{notes}"


def _page(title: str, body: str, status: int) -> web.Response:
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}"
        "th{text-align:left;padding-right:1em}.note{color:#57606a;font-size:12px}"
        "button{padding:.6em 1.2em;font-size:1em}.approve{background:#1a7f37;color:#fff}"
        ".reject{background:#cf222e;color:#fff}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        # The link is the credential: never send it to another site. (Not no-referrer: a browser then
        # posts the form with "Origin: null", which the origin check must refuse.)
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    }
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)
