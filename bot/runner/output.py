"""A job's output lines on their way to the server: coalesced, sent about twice a second, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from bot.runner.client import Api

INTERVAL = 0.5  # seconds between uploads
MAX_LINES = 400  # lines per upload (the API takes 500): of more in one interval, the newest are sent
log = logging.getLogger(__name__)
MAX_PENDING = 256 * 1024  # bytes of a partial line held (a program writing without newlines)


class OutputStream:
    """Collects a program's output chunks (``feed``) and uploads the complete lines in batches."""

    def __init__(self, api: Api, path: str) -> None:
        self.api = api
        self.path = path
        self.partial = bytearray()
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.dropped = 0
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self._send())

    def feed(self, chunk: bytes) -> None:
        self.partial += chunk
        *complete, rest = self.partial.split(b"\n")
        self.partial = bytearray(rest[-MAX_PENDING:])
        for line in complete:
            if len(self.lines) == MAX_LINES:
                self.dropped += 1  # the oldest goes: the server keeps the tail anyway
            self.lines.append(line.decode("utf-8", errors="replace"))
        if complete:
            self.wake.set()

    async def close(self) -> None:
        """Send what is left, then stop."""
        if self.partial:
            self.lines.append(bytes(self.partial).decode("utf-8", errors="replace"))
            self.partial.clear()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), timeout=5.0)

    async def _send(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self._flush()
            await asyncio.sleep(INTERVAL)

    async def _flush(self) -> None:
        lines = list(self.lines)
        self.lines.clear()
        if self.dropped:
            lines.insert(0, f"[{self.dropped} lines not streamed: more than {MAX_LINES} in {INTERVAL}s]")
            self.dropped = 0
        if lines:
            status, data = await self.api.call(self.path, {"lines": lines})
            if status != 200:
                log.warning("output lines were not taken (%s): %s", status, data.get("detail"))
