"""Single-use signed links for deciding an approval from an e-mail, pure: made and read, never stored.

A link is ``base64url(json).base64url(HMAC-SHA256(key, json))``, keyed with the web secret under its own
purpose, so a session cookie can never pass for a link nor a link for a cookie. It names the request,
the approver (their identity and the address it was sent to), the decision and when it expires: the
request's own deadline, or ``LINK_HOURS`` for a request without one. Its id is a digest of what it
says; ``email_links_used`` records the id with the vote it cast, so a link counts once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

PURPOSE = b"approval-email-link\0"
LINK_HOURS = 72.0  # a request without a timeout: its links last this long
MAX_LINK = 2000  # characters; a longer path segment is not one of ours


@dataclass(frozen=True)
class Link:
    """What a link decides, for whom, and until when."""

    approval_id: str
    actor: str  # the approver's identity ref, e.g. "console:alice", "slack:U024BE7LH"
    address: str  # where the e-mail went
    decision: str  # approve | reject
    expires: float

    @property
    def payload(self) -> dict[str, str | float]:
        return {
            "a": self.approval_id,
            "t": self.actor,
            "m": self.address,
            "d": self.decision,
            "e": self.expires,
        }


class LinkProblem(Exception):
    """Why a link cannot be used: ``kind`` is foreign | expired; ``message`` is what the person reads."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _canonical(link: Link) -> bytes:
    return json.dumps(link.payload, separators=(",", ":"), sort_keys=True).encode()


def link_id(link: Link) -> str:
    """The id under which a link's use is recorded: a digest of what it says, never the link itself.

    Taken from the decoded payload, not the token's text, so no other spelling of the same link (base64
    has spare bits) passes for a fresh one.
    """
    return hashlib.sha256(_canonical(link)).hexdigest()[:40]


def expiry(expires_at: float | None, created_at: float) -> float:
    """When a request's links stop working: with the request, or ``LINK_HOURS`` after it was made."""
    return expires_at if expires_at is not None else created_at + LINK_HOURS * 3600


class Links:
    """Makes and reads links with one secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def make(self, link: Link) -> str:
        """The signed token for ``link`` (the last path segment of its URL)."""
        body = _canonical(link)
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def read(self, token: str, now: float) -> Link:
        """The link ``token`` names; ``LinkProblem`` when it is not one of ours or has expired."""
        foreign = LinkProblem(
            "foreign", "This link was not made by this Switchboard, or it was cut short or altered."
        )
        if len(token) > MAX_LINK or token.count(".") != 1:
            raise foreign
        body_part, mac_part = token.split(".")
        try:
            body, mac = _unb64(body_part), _unb64(mac_part)
        except (binascii.Error, ValueError):
            raise foreign from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise foreign
        try:
            data = json.loads(body)
            link = Link(str(data["a"]), str(data["t"]), str(data["m"]), str(data["d"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            raise foreign from None
        if link.decision not in ("approve", "reject"):
            raise foreign
        if link.expires <= now:
            raise LinkProblem("expired", "This link has expired, with the request it was sent for.")
        return link

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self.secret, PURPOSE + body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
