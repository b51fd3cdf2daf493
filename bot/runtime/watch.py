"""Watching lease holders on this host: a pidfd per process, readable the moment it exits.

Takeover on the same host must not wait for a lease to lapse. The poll loop checks every holder's
liveness once a tick; where the kernel offers pidfds (Linux 5.3+), the event loop also learns of an
exit at once, zombies included (a pidfd turns readable at exit, before the parent reaps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from bot.owners import is_dead, is_local, parse_owner

log = logging.getLogger(__name__)
MAX_WATCHED = 256  # a bound on open pidfds; holders beyond it are still checked every tick


class OwnerWatch:
    """Calls ``on_exit`` as soon as a watched lease holder on this host exits."""

    def __init__(self, me: str, on_exit: Callable[[], None]) -> None:
        self.me = me
        self.on_exit = on_exit
        self._fds: dict[str, int] = {}
        self._unwatchable: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, owners: list[str]) -> None:
        """Start watching the live local holders among ``owners`` (and stop watching the others)."""
        if not hasattr(os, "pidfd_open"):
            return
        self._loop = self._loop or asyncio.get_running_loop()
        wanted = {o for o in owners if o != self.me and is_local(o)}
        for owner in set(self._fds) - wanted:
            self._forget(owner)
        self._unwatchable &= wanted
        for owner in wanted - set(self._fds) - self._unwatchable:
            if len(self._fds) >= MAX_WATCHED:
                break
            self._open(owner)

    def close(self) -> None:
        """Stop watching everything."""
        for owner in list(self._fds):
            self._forget(owner)

    def _open(self, owner: str) -> None:
        parsed = parse_owner(owner)
        assert parsed is not None and self._loop is not None
        try:
            fd = os.pidfd_open(parsed.pid)
        except OSError:
            self._unwatchable.add(owner)  # gone already, or not ours to see: the tick's check decides
            return
        # The pid might have been reused between the tick's check and the open: check with the fd held.
        if is_dead(owner, self.me):
            os.close(fd)
            self._unwatchable.add(owner)
            return
        self._fds[owner] = fd
        self._loop.add_reader(fd, self._exited, owner)

    def _exited(self, owner: str) -> None:
        self._forget(owner)
        log.info("lease holder %s exited; taking over its runs", owner)
        self.on_exit()

    def _forget(self, owner: str) -> None:
        fd = self._fds.pop(owner, None)
        if fd is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
