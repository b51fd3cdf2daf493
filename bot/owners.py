"""Process identities for leases and claims, and telling whether the process behind one is gone.

An owner is ``host:pid:start:boot:nonce``. ``start`` is the process's start time (field 22 of
``/proc/<pid>/stat``, clock ticks since boot) and ``boot`` the host's boot id, so a pid that was
reused by a new process, or a host that rebooted, is told apart from the process that took the lease.
The nonce separates two runtimes of one process (tests start several).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    """A parsed owner string (``start`` and ``boot`` are empty for the older ``host:pid:nonce`` form)."""

    host: str
    pid: int
    start: str
    boot: str


def new_owner() -> str:
    """This process's identity, with a fresh nonce."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_time(pid) or '-'}:{boot_id() or '-'}:{secrets.token_hex(3)}"


def parse_owner(owner: str) -> Owner | None:
    """The parts of an owner string, or None when it is not one (then nobody can call it dead)."""
    parts = owner.split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    if len(parts) >= 5:
        start, boot = (p if p != "-" else "" for p in parts[2:4])
        return Owner(parts[0], int(parts[1]), start, boot)
    return Owner(parts[0], int(parts[1]), "", "")


def is_local(owner: str) -> bool:
    """Whether ``owner`` names a process on this host (its liveness can be checked here)."""
    parsed = parse_owner(owner)
    return parsed is not None and parsed.host == socket.gethostname()


def is_dead(owner: str, me: str) -> bool:
    """Whether ``owner`` is a process on this host that no longer runs (never true for other hosts).

    A zombie (exited, not yet reaped by its parent) is dead: it holds no state and runs nothing.
    """
    parsed = parse_owner(owner)
    if owner == me or parsed is None or parsed.host != socket.gethostname():
        return False
    if parsed.boot and boot_id() and parsed.boot != boot_id():
        return True  # the host restarted since: every process of that boot is gone
    stat = _stat(parsed.pid)
    if stat is None:
        if PROC.joinpath("self", "stat").exists():
            return True  # /proc works here and has no such pid
        return _gone_by_signal(parsed.pid)
    state, started = stat
    if state in ("Z", "X"):
        return True
    return bool(parsed.start) and started != parsed.start


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is not available)."""
    stat = _stat(pid)
    return stat[1] if stat else ""


@cache
def boot_id() -> str:
    """The host's boot id, shortened ('' where the kernel does not publish one)."""
    try:
        return PROC.joinpath("sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from /proc/<pid>/stat, or None when there is no such process."""
    try:
        text = PROC.joinpath(str(pid), "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]  # field 3 (state) and field 22 (starttime)


def _gone_by_signal(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
