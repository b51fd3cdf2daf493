"""A real local SMTP server (aiosmtpd, on 127.0.0.1) that keeps what it receives, and the app beside it."""

from __future__ import annotations

import asyncio
import re
import warnings
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bot.config import Settings

ADDRESSES = {
    "console:alice": "alice@example.com",
    "console:bob": "bob@example.com",
    "console:erin": "erin@example.com",
}


class Mailbox:
    """Every message the server accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(message_from_bytes(content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


async def serve_smtp(
    mailbox: Mailbox, port: int = 0, login: tuple[str, str] | None = None
) -> tuple[asyncio.Server, int]:
    """The SMTP server on 127.0.0.1 (``port`` 0: any free one), and the port it listens on; with
    ``login``, it requires AUTH with that user and password (over plain TCP: it is a test)."""

    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and login == (data.login.decode(), data.password.decode())
        return AuthResult(success=ok)

    def protocol() -> SMTP:
        if login is None:
            return SMTP(mailbox, hostname="switchboard.test")
        with warnings.catch_warnings():  # AUTH over plain TCP: this server is a test's, on loopback
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                mailbox,
                hostname="switchboard.test",
                authenticator=check,
                auth_required=True,
                auth_require_tls=False,
            )

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", port)
    return server, int(server.sockets[0].getsockname()[1])


def email_settings(tmp_path: Path, workflows_dir: Path, smtp_port: int, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'email.db'}",
        workflows_dir=workflows_dir,
        port=0,
        poll_interval=0.05,
        kill_grace=0.5,
        card_update_interval=0.2,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_from="switchboard@switchboard.test",
        smtp_timeout=5.0,
        email_addresses=ADDRESSES,
        **extra,
    )


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link(message: EmailMessage, decision: str) -> str:
    """The URL of the message's Approve or Reject link."""
    found = re.search(rf"^{decision.capitalize()}: (\S+)", text_of(message), re.M)
    assert found, text_of(message)
    return found.group(1)


async def follow(url: str, jar: aiohttp.CookieJar | None = None, comment: str = "") -> tuple[int, str]:
    """Open the link's page, then confirm it as its form does: the answer's status and text."""
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(url) as page:
            html = await page.text()
            if page.status != 200:
                return page.status, html
        csrf = re.search(r"name='csrf' value='([0-9a-f]+)'", html)
        assert csrf, html
        async with http.post(url, data={"csrf": csrf.group(1), "comment": comment}) as answer:
            return answer.status, await answer.text()
