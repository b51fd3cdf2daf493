"""Standard Webhooks signatures: what a delivery's headers say, and how a receiver checks them.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the key is the secret's base64 part
(after ``whsec_``); the signature header is ``v1,`` and the base64 HMAC-SHA256 of the content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"
TOLERANCE = 300  # seconds a receiver accepts a timestamp off its clock (the spec's suggestion)


def key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after ``whsec_`` (``binascii.Error`` when it is not base64)."""
    return base64.b64decode(secret.removeprefix(PREFIX), validate=True)


def signature(secret: str, message_id: str, timestamp: int, body: str | bytes) -> str:
    """The ``webhook-signature`` value for one delivery (sent, or expected by a receiver)."""
    content = f"{message_id}.{timestamp}.".encode() + (body.encode() if isinstance(body, str) else body)
    digest = hmac.new(key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers a delivery is sent with."""
    return {
        "content-type": "application/json",
        "user-agent": "Switchboard-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def verify(secret: str, got: dict[str, str], body: str, now: float) -> bool:
    """Whether headers ``got`` sign ``body`` with ``secret`` and are recent: what a receiver does."""
    try:
        message_id, stamp = got["webhook-id"], int(got["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > TOLERANCE:
        return False
    wanted = signature(secret, message_id, stamp, body)
    # The header may hold several space-separated signatures (during a secret's rotation).
    return any(hmac.compare_digest(wanted, given) for given in got.get("webhook-signature", "").split())
