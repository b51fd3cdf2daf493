"""slack_sdk retry handlers tuned for the outbox: a short ``Retry-After`` is waited out in the call, a long
one goes back to the outbox, which retries the message when Slack says (and holds nothing meanwhile)."""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

SHORT_WAIT = 2.0  # seconds: two such waits stay well inside SWITCHBOARD_DELIVERY_TIMEOUT's default


class ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Retry a 429 only when its ``Retry-After`` is short; a longer one is the caller's to schedule."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        for name, values in response.headers.items():
            if name.lower() == "retry-after":
                value = values[0] if isinstance(values, list) and values else values
                try:
                    return float(str(value)) <= SHORT_WAIT
                except ValueError:
                    return False
        return True  # no Retry-After: slack_sdk waits about a second
