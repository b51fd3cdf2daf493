"""A job's output lines on their way to the server: coalesced, sent about twice a second, bounded."""

from __future__ import annotations

import asyncio
import contextlib

from bot.runner.client import Api

INTERVAL = 0.5  # seconds between uploads
MAX_LINES = 500  # lines per upload; more in one interval are counted, not sent
MAX_PENDING = 256 * 1024  # bytes of a partial line held (a program writing without newlines)


class OutputStream:
    """Collects a program's output chunks (``feed``) and uploads the complete lines in batches."""

    def __init__(self, api: Api, path: str) -> None:
        self.api = api
        self.path = path
        self.partial = bytearray()
        self.lines: list[str] = []
        self.dropped = 0
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self._send())

    def feed(self, chunk: bytes) -> None:
        self.partial += chunk
        *complete, rest = self.partial.split(b"\n")
        self.partial = bytearray(rest[-MAX_PENDING:])
        for line in complete:
            if len(self.lines) < MAX_LINES:
                self.lines.append(line.decode("utf-8", errors="replace"))
            else:
                self.dropped += 1
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
        lines, self.lines = self.lines, []
        if self.dropped:
            lines.append(f"[{self.dropped} lines not streamed: more than {MAX_LINES} in {INTERVAL}s]")
            self.dropped = 0
        if lines:
            await self.api.call(self.path, {"lines": lines})
