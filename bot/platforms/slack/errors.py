"""What Slack's refusals mean and what to do about them: every Slack-facing hint lives here.

Slack answers ``{"ok": false, "error": "..."}`` (HTTP 200) for refusals, HTTP 429 with ``Retry-After``
when rate-limited, and 5xx when it is having trouble. slack_sdk retries 429 and 5xx first (with the
handlers the adapter installs); what still fails arrives here as a ``SlackApiError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.delivery.contract import DeliveryError

INVITE = "invite the bot to the channel with /invite @Switchboard"
TOKEN = (
    "check SLACK_BOT_TOKEN: it must be the app's Bot User OAuth Token (xoxb-…); "
    "reinstall the app if the token was revoked"
)
TOO_BIG = (
    "the card broke one of Slack's limits; this is a Switchboard bug, please report it with this log line"
)

HINTS = {
    "channel_not_found": f"check the channel id; for a private channel, {INVITE}",
    "not_in_channel": INVITE,
    "user_not_in_channel": "the person is not in that channel any more",
    "is_archived": "the channel is archived: unarchive it, or start the workflow from another channel",
    "missing_scope": "add the chat:write scope (every scope is in slack-manifest.yaml) and reinstall the app",
    "not_allowed_token_type": TOKEN,
    "invalid_auth": TOKEN,
    "not_authed": TOKEN,
    "token_revoked": TOKEN,
    "token_expired": TOKEN,
    "account_inactive": TOKEN,
    "msg_too_long": TOO_BIG,
    "msg_blocks_too_long": TOO_BIG,
    "invalid_blocks": TOO_BIG,
    "invalid_blocks_format": TOO_BIG,
    "invalid_metadata_format": TOO_BIG,
    "restricted_action": "a workspace admin restricts posting there: allow the app, or use another channel",
    "message_not_found": "the card's message was deleted, so later changes of the run are not shown",
    "cant_update_message": "the bot can only edit messages it posted itself",
    "expired_trigger_id": "the form must open within 3 s of the command; run the command again",
}
# Errors that say "try again" although the HTTP status is 200.
RETRYABLE = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}


def slack_error(exc: SlackApiError) -> str:
    """The ``error`` code of a refusal ("channel_not_found"), or the HTTP status when there is none."""
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return str(data.get("error") or f"HTTP {exc.response.status_code}")


def hint_for(exc: SlackApiError) -> str:
    """What the operator should change, as far as Slack's answer tells."""
    error = slack_error(exc)
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    if error == "missing_scope" and data.get("needed"):
        # Slack names the scope it wanted: say exactly that one.
        return f"add the {data['needed']} scope (see slack-manifest.yaml) and reinstall the app"
    return HINTS.get(error, "")


def delivery_error(method: str, channel: str, exc: SlackApiError) -> DeliveryError:
    """The ``DeliveryError`` for a refusal: 429 waits ``Retry-After``, 5xx retries, the rest is permanent."""
    status = exc.response.status_code
    error = slack_error(exc)
    where = f"Slack {method} to {channel}"
    if status == 429 or error == "ratelimited":
        return DeliveryError(f"{where}: rate limited", retry_after=_retry_after(exc.response.headers))
    if status >= 500 or error in RETRYABLE:
        return DeliveryError(f"{where}: Slack answered {error}")
    hint = hint_for(exc) or f"see https://api.slack.com/methods/{method}#errors"
    return DeliveryError(f"{where} refused: {error}", permanent=True, hint=hint)


@contextmanager
def refused(method: str, channel: str) -> Iterator[None]:
    """Turn what slack_sdk raises into a ``DeliveryError`` (retryable or permanent, with a hint)."""
    try:
        yield
    except SlackApiError as exc:
        raise delivery_error(method, channel, exc) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise DeliveryError(f"Slack {method} to {channel}: could not reach Slack ({exc!r})") from None


def _retry_after(headers: Any) -> float | None:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(float(text), 0.0)
            except ValueError:
                return None
    return None
