"""Signed cookies: the session (who is signed in, their CSRF token, until when) and a sign-in in flight.

A cookie is ``base64url(json).base64url(HMAC-SHA256(secret, purpose + json))``. The purpose is part of
the MAC, so a sign-in cookie can never pass for a session. Nothing in it is secret, only unforgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from bot.identity import Identity

SESSION_COOKIE = "sb_session"
FLOW_COOKIE = "sb_signin"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    """A signed-in person: who, the CSRF token their page sends back, and when the session ends."""

    who: Identity
    csrf: str
    expires: float
    mode: str  # dev | oidc: a dev session is worthless once the server runs in oidc mode

    @classmethod
    def new(cls, who: Identity, now: float, hours: float, mode: str) -> Session:
        return cls(who, secrets.token_urlsafe(32), now + hours * 3600, mode)

    def to_dict(self) -> dict[str, Any]:
        return {"who": self.who.to_dict(), "csrf": self.csrf, "exp": self.expires, "mode": self.mode}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(Identity.from_dict(data["who"]), str(data["csrf"]), float(data["exp"]), str(data["mode"]))

    def csrf_ok(self, sent: str | None) -> bool:
        """Whether a request's CSRF header is this session's token (compared in constant time)."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Signer:
    """Signs and checks cookie values with one secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def sign(self, purpose: str, data: dict[str, Any]) -> str:
        body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac(purpose, body))}"

    def unsign(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        """The data of a cookie this signer made for ``purpose``; None when absent, altered or foreign."""
        if not value or value.count(".") != 1:
            return None
        body_part, mac_part = value.split(".")
        try:
            body, mac = _unb64(body_part), _unb64(mac_part)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _mac(self, purpose: str, body: bytes) -> bytes:
        return hmac.new(self.secret, purpose.encode() + b"\0" + body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
