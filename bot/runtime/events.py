"""In-process fan-out of stored events, and following a run's timeline across processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.storage.runs import RunStore


@dataclass(frozen=True)
class RunEvent:
    """A committed line of a run's timeline."""

    run_id: str
    seq: int
    type: str
    step_key: str | None
    data: dict[str, Any]
    at: float


class EventHub:
    """Publishes events after they are committed; subscribers get them in order."""

    def __init__(self) -> None:
        self._subs: list[tuple[str | None, asyncio.Queue[RunEvent]]] = []

    def publish(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Hand freshly committed event rows to every matching subscriber."""
        if not self._subs:
            return
        for row in rows:
            event = RunEvent(run_id, row["seq"], row["type"], row["step_key"], row["data"], row["at"])
            for wanted, queue in self._subs:
                if wanted is None or wanted == run_id:
                    queue.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self, run_id: str | None = None) -> Iterator[asyncio.Queue[RunEvent]]:
        """A queue receiving the events of one run (or of all runs) while the block is open."""
        entry: tuple[str | None, asyncio.Queue[RunEvent]] = (run_id, asyncio.Queue())
        self._subs.append(entry)
        try:
            yield entry[1]
        finally:
            self._subs.remove(entry)


async def follow(
    hub: EventHub,
    store: RunStore,
    run_id: str,
    poll: float = 0.25,
    after_seq: int = 0,
    idle: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[RunEvent]:
    """Every event of a run from ``after_seq`` on, until it finishes (or ``idle()`` says to stop)."""
    last = after_seq
    with hub.subscribe(run_id) as queue:
        while True:
            for row in await store.events_after(run_id, last):
                last = row.seq
                event = RunEvent(row.run_id, row.seq, row.type, row.step_key, row.data, row.at)
                yield event
                if event.type == "run_finished":
                    return
            try:
                async with asyncio.timeout(poll):
                    await queue.get()
            except TimeoutError:
                if idle is not None and await idle():
                    return
            while not queue.empty():
                queue.get_nowait()
