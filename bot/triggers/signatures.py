"""Webhook signatures, checked in constant time: GitHub's ``X-Hub-Signature-256`` and Standard Webhooks.

Pure: the caller passes the raw body, the headers and the time. Each check returns the delivery's id (what a
replay would repeat) or raises BadSignature with the reason a sender's operator should read.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Mapping

from bot.delivery import webhook_signing
from bot.delivery.webhook_signing import TOLERANCE  # a timestamp more than 5 minutes off is refused

MAX_ID = 200


class BadSignature(ValueError):
    """The request is not signed with the hook's secret (or not signed at all, or too old)."""


class BadSecret(ValueError):
    """The configured secret cannot be used (a Standard Webhooks secret must be whsec_ and base64)."""


def github_delivery(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check ``X-Hub-Signature-256: sha256=<hex>``; the id is ``X-GitHub-Delivery`` (else the signature)."""
    given = headers.get("X-Hub-Signature-256")
    if not given:
        raise BadSignature(
            "the request has no X-Hub-Signature-256 header; set the hook's secret at the sender"
        )
    scheme, _, digest = given.strip().partition("=")
    if scheme != "sha256" or not digest:
        raise BadSignature("X-Hub-Signature-256 must read sha256=<hex digest>")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise BadSignature(
            "the signature does not match the body: the secret differs, or the body was changed"
        )
    delivery = headers.get("X-GitHub-Delivery", "").strip()
    return delivery[:MAX_ID] if delivery else f"sha256={expected}"


def bearer_delivery(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check ``Authorization: Bearer <secret>``, for senders that cannot sign (Alertmanager's webhook
    receiver sends a fixed credential); the id is the body's SHA-256, so the same notification sent again
    is a replay."""
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise BadSignature("the request has no 'Authorization: Bearer <secret>' header")
    if not hmac.compare_digest(
        hashlib.sha256(token.strip().encode()).digest(), hashlib.sha256(secret.encode()).digest()
    ):
        raise BadSignature("the bearer credential is not the hook's secret")
    return "sha256:" + hashlib.sha256(body).hexdigest()


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``."""
    try:
        key = webhook_signing.key(secret)
    except (binascii.Error, ValueError):
        raise BadSecret("a Standard Webhooks secret is 'whsec_' followed by base64") from None
    if not key:
        raise BadSecret("the Standard Webhooks secret is empty")
    return key


def standard_delivery(secret: str, body: bytes, headers: Mapping[str, str], now: float) -> str:
    """Check ``webhook-signature`` (``v1,<base64>`` entries, any may match) over ``id.timestamp.body``, and
    that ``webhook-timestamp`` is within 5 minutes of ``now``; the id is ``webhook-id``."""
    standard_key(secret)  # a clear refusal for a secret that is not whsec_ and base64
    delivery, stamp, signatures = (
        headers.get(h, "").strip() for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    missing = [
        h
        for h, v in (
            ("webhook-id", delivery),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not v
    ]
    if missing:
        raise BadSignature(f"the request lacks the Standard Webhooks header(s) {', '.join(missing)}")
    if len(delivery) > MAX_ID:
        raise BadSignature(f"webhook-id is longer than {MAX_ID} characters")
    if not stamp.isdigit():
        raise BadSignature("webhook-timestamp must be whole seconds since 1970 (UTC)")
    if abs(now - int(stamp)) > TOLERANCE:
        raise BadSignature(
            f"webhook-timestamp is {abs(now - int(stamp)):.0f} s from this server's clock; at most "
            f"{TOLERANCE:.0f} s are accepted (an old delivery, or a clock that is off)"
        )
    expected = webhook_signing.signature(secret, delivery, int(stamp), body).encode()
    matched = False
    for entry in signatures.split():
        if entry.startswith("v1,") and hmac.compare_digest(expected, entry.encode()):
            matched = True  # keep comparing: the time taken does not tell which entry matched
    if not matched:
        raise BadSignature("no v1 signature matches the body: the secret differs, or the body was changed")
    return delivery


def sign_standard(secret: str, delivery: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` a sender sets (for tests and for senders written against Switchboard)."""
    standard_key(secret)
    return webhook_signing.signature(secret, delivery, timestamp, body)


def sign_github(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` a GitHub-style sender sets."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
