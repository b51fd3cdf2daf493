"""A run loaded in this process: its core, its activity tasks and the signals waiting for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from engine.core import Core
from engine.signals import Decision, Signal


@dataclass
class LiveRun:
    """One run this process holds the lease on; signals are applied one batch at a time."""

    core: Core
    digest: str
    seq: int  # the last event sequence number stored
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    cancelling: set[str] = field(default_factory=set)
    signals: list[Signal] = field(default_factory=list)
    mail: bool = True  # the inbox may hold signals for this run
    inbox_seen: int = 0
    consumed: list[int] = field(default_factory=list)
    # The unread mail as a load read it with its claim: the driver's first look at the inbox, unless a
    # poke since then asks for a fresh read (which reads it all again, from ``inbox_seen``).
    mailed: list[tuple[int, str, dict[str, Any]]] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    driver: asyncio.Task[None] | None = None
    lost: bool = False
    had_approvals: bool = True  # may hold pending approval requests (unknown for a run loaded from storage)
    # step_processes rows of programs that ended: deleted in the commit that stores their ends
    ended: list[dict[str, Any]] = field(default_factory=list)
    ending: list[dict[str, Any]] = field(default_factory=list)  # taken with the signals, for the next commit
    attempts: int = 0  # takeovers since the run last made progress (reset in storage at its next progress)

    @property
    def run_id(self) -> str:
        return self.core.state.run_id

    def push(self, signal: Signal) -> None:
        """Queue a signal from this process (an activity's result, a resume)."""
        self.signals.append(signal)
        self.wake.set()

    def poke(self) -> None:
        """Tell the run to read its inbox."""
        self.mailed = None
        self.mail = True
        self.wake.set()

    def take(self) -> list[Signal]:
        """Every queued signal, in arrival order."""
        taken, self.signals = self.signals, []
        # An activity adds its ended row just before pushing its result: both are taken together.
        self.ending += self.ended
        self.ended = []
        return taken

    @property
    def parked(self) -> bool:
        """Nothing is running and nothing is queued: the run waits on a timer, an approval or a child."""
        return not self.tasks and not self.signals and not self.mail


def merge(into: Decision, more: Decision) -> None:
    """Fold a later decision into an earlier one (a wave stored in one commit)."""
    into.events.extend(more.events)
    into.effects.extend(more.effects)
    into.dirty |= more.dirty
    into.run_changed = into.run_changed or more.run_changed


class RunLocks:
    """One lock per run being loaded or submitted here, so a process never loads a run twice."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, run_id: str) -> AsyncIterator[None]:
        """Hold the run's lock (waiting for another load of it to finish first)."""
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        self._users[run_id] = self._users.get(run_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[run_id] -= 1
            if not self._users[run_id]:
                del self._users[run_id], self._locks[run_id]
