"""The outbox's webhook item kind: signed POSTs to subscribers, retried with exponential back-off.

Each due delivery is claimed (compare-and-set), checked against the SSRF guard that http steps use
(``settings.http_guard``: not Switchboard's own listener, not link-local or cloud metadata), sent with
httpx within a timeout, and logged attempt by attempt. The name is resolved and checked here, and the
request then dials the checked address (with the name as Host and TLS server name), so a name that
resolves elsewhere the second time (DNS rebinding) cannot slip past. Redirects are not followed: a 3xx
is an answer like any other non-2xx, and is retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from bot.delivery.webhook_signing import headers
from bot.storage.webhook_queue import WebhookRows
from engine.activities.http_guard import HttpGuard, Refused

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12  # 1 s, 2 s, 4 s ... 1024 s: about 34 minutes of retries at the default base, then given up
MAX_DELAY = 3600.0
PARALLEL = 50  # sends in flight per process


def backoff(attempts: int, base: float, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones (a 429's Retry-After when longer)."""
    delay = min(base * 2.0 ** (attempts - 1), MAX_DELAY)
    return min(max(delay, retry_after or 0.0), MAX_DELAY)


class WebhookSender:
    """Delivers due webhook rows; the outbox calls ``run_due`` whenever it looks for work."""

    def __init__(
        self,
        rows: WebhookRows,
        owner: str,
        clock: Callable[[], float],
        guard: HttpGuard,
        timeout: float = 10.0,
        base_delay: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.rows = rows
        self.owner = owner
        self.clock = clock
        self.guard = guard
        self.timeout = timeout
        self.base_delay = base_delay
        self.max_attempts = max_attempts
        self.claim_timeout = max(60.0, 3 * timeout)
        self._sending: dict[int, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._backlog = False  # more was due than there were slots
        self.wake: Callable[[], None] = lambda: None  # the outbox sets its own
        self.delivered = 0

    async def run_due(self) -> None:
        """Claim what is due, as many as there are free slots, and start sending each on its own."""
        now = self.clock()
        free = PARALLEL - len(self._sending)
        due = [
            r
            for r in await self.rows.due(now, now - self.claim_timeout, self.owner)
            if r.id not in self._sending
        ]
        self._backlog = len(due) > free
        if free <= 0 or not due:
            return
        won = await self.rows.claim([r.id for r in due[:free]], self.owner, now, now - self.claim_timeout)
        for row in due[:free]:
            if row.id not in won:
                continue  # another process has it
            task = asyncio.create_task(self._deliver(row), name=f"webhook {row.id}")
            self._sending[row.id] = task
            task.add_done_callback(functools.partial(self._done, int(row.id)))

    def _done(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._sending.pop(delivery_id, None)
        if self._backlog:
            self.wake()  # a slot is free and more is due: look now, not at the next poll

    async def close(self) -> None:
        """Let sends in flight finish (each is bounded by the timeout), then close the client."""
        await asyncio.gather(*self._sending.values(), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, row: Any) -> None:
        try:
            await self._attempt(row)
        except Exception:
            log.exception("webhooks: delivering %s failed unexpectedly", row.id)

    async def _attempt(self, row: Any) -> None:
        attempt = row.attempts + 1
        started, at = time.monotonic(), self.clock()
        code: int | None = None
        answer: str | None = None
        error: str | None = None
        permanent = False
        retry_after: float | None = None
        if row.url is None:
            error, permanent = "the subscription was removed", True
        else:
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._post(row, int(at))
                code, answer = response.status_code, response.text
                if not 200 <= code < 300:
                    error = f"the receiver answered {code}"
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except Refused as exc:
                error, permanent = str(exc), True
            except TimeoutError:
                error = f"no answer within {self.timeout:g} s"
            except (httpx.HTTPError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        took = time.monotonic() - started
        log_row = {
            "attempt": attempt,
            "at": at,
            "took": took,
            "status_code": code,
            "response": answer,
            "error": error,
        }
        now = self.clock()
        if error is None:
            values: dict[str, Any] = {
                "status": "delivered",
                "attempts": attempt,
                "error": None,
                "finished_at": now,
            }
            self.delivered += 1
        elif permanent or attempt >= self.max_attempts:
            values = {"status": "failed", "attempts": attempt, "error": error, "finished_at": now}
            log.warning(
                "webhooks: delivery %s to %s given up after %d attempt(s): %s",
                row.id,
                row.url,
                attempt,
                error,
            )
        else:
            delay = backoff(attempt, self.base_delay, retry_after)
            values = {"status": "pending", "attempts": attempt, "error": error, "next_at": now + delay}
            log.info("webhooks: delivery %s will be retried in %.1fs: %s", row.id, delay, error)
        await self.rows.record([(int(row.id), log_row, values)])

    async def _post(self, row: Any, timestamp: int) -> httpx.Response:
        url = httpx.URL(row.url)
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        address = await self._checked_address(host, port)
        sent_headers = headers(row.secret, row.message_id, timestamp, row.body)
        sent_headers["host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), follow_redirects=False)
        request = self._client.build_request(
            "POST",
            url.copy_with(host=address),
            content=row.body.encode(),
            headers=sent_headers,
            extensions=extensions,
        )
        return await self._client.send(request)

    async def _checked_address(self, host: str, port: int) -> str:
        """The address to dial for ``host``, every address it resolves to checked by the guard."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} did not resolve")
        for address in addresses:
            self.guard.check(host, address, port)
        return addresses[0]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the back-off stands
