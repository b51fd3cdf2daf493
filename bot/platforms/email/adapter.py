"""The email platform as the outbox and the process see it: sends approval e-mails, serves their page.

An e-mail item names a request and an approver (``bot.approvals.email_requests``). When it is due the
request is read as it is now: one already decided sends nothing; otherwise the approver's address is
looked up, their links are signed, and the mail goes to the SMTP server. A server that is down raises
a retryable ``DeliveryError``, so the outbox tries again with back-off and the item stays stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from aiohttp import web

from bot.approvals.email_requests import parse_channel
from bot.approvals.links import Link, Links, expiry
from bot.approvals.views import Stored, read_view
from bot.delivery.contract import UNLIMITED, DeliveryError, Sent
from bot.platforms.context import PlatformContext
from bot.platforms.email.addresses import Addresses
from bot.platforms.email.message import Envelope, approval_email
from bot.platforms.email.sender import SmtpSender
from bot.web_auth.auth import WebAuth
from cards.model import Card

DECISIONS = ("approve", "reject")


class EmailAdapter:
    """Approval e-mails through SMTP, and the confirmation page their links open."""

    platform = "email"
    posting = UNLIMITED  # the SMTP server paces itself; each item is one connection
    editing = UNLIMITED

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.addresses = Addresses(ctx.settings)
        self.sender = SmtpSender(ctx.settings)
        self.auth = WebAuth(ctx.settings, ctx.engine, ctx.clock, ctx.directories)
        self._links: Links | None = None
        self._lock = asyncio.Lock()
        self.sent = 0

    # -- the process --------------------------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        from bot.platforms.email.page import ConfirmPage  # it imports this module

        ConfirmPage(self).attach(app)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def describe(self) -> str:
        return f"E-mail: approvals through {self.settings.smtp_host}:{self.settings.smtp_port}"

    # -- links --------------------------------------------------------------------------------------

    async def links(self) -> Links:
        """The link signer, keyed with the web secret (the one web sessions use) under its own purpose."""
        if self._links is None:
            async with self._lock:
                if self._links is None:
                    self._links = Links((await self.auth.signer()).secret)
        return self._links

    def base_url(self) -> str:
        return (self.settings.public_url or self.ctx.url).rstrip("/")

    async def csrf(self, token: str) -> str:
        """The confirmation form's CSRF token: bound to the link, so only its page can post it."""
        key = (await self.links()).secret
        return hmac.new(key, b"email-csrf\0" + token.encode(), hashlib.sha256).hexdigest()

    # -- the outbox ---------------------------------------------------------------------------------

    async def post(self, channel: str, card: Card, key: str) -> Sent:
        approval_id, ref = parse_channel(channel)
        async with self.ctx.engine.connect() as conn:
            stored = await read_view(conn, approval_id, self.ctx.clock())
        if stored is None or not stored.view.pending:
            return Sent(f"skipped:{key}")  # decided (or gone) before its mail went: nothing to ask
        address = await self.addresses.of(ref)
        if address is None:
            raise DeliveryError(
                f"no e-mail address for {ref}",
                permanent=True,
                hint=f'map it in SWITCHBOARD_EMAIL_ADDRESSES, e.g. {{"{ref}": "name@example.com"}}',
            )
        message = approval_email(
            stored.view,
            Envelope(self.settings.smtp_from, address, key),
            await self._urls(stored, ref, address),
        )
        await self.sender.send(message)
        self.sent += 1
        return Sent(str(message["Message-ID"]))

    async def _urls(self, stored: Stored, ref: str, address: str) -> dict[str, str]:
        links = await self.links()
        until = expiry(stored.row.expires_at, stored.row.created_at)
        base = self.base_url()
        return {
            d: f"{base}/approvals/email/{links.make(Link(stored.row.id, ref, address, d, until))}"
            for d in DECISIONS
        }

    async def update(self, sent: Sent, card: Card) -> None:
        raise DeliveryError("an e-mail cannot be edited once sent", permanent=True)

    async def thread(self, parent: Sent) -> str:
        raise DeliveryError("e-mails have no threads here", permanent=True)

    async def reply(self, thread: str, card: Card, key: str) -> Sent:
        raise DeliveryError("e-mails have no threads here", permanent=True)

    async def find(self, channel: str, key: str) -> Sent | None:
        return None  # SMTP cannot tell whether an earlier try got through: at worst a mail goes twice
