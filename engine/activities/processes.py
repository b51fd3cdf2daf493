"""Linux process facts for step programs: binding a child to the bot, and finding and killing an orphan.

A step's program runs in a process group of its own. It is bound to the bot in two ways:
- the parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), set in the child before exec, kills the
  program itself when the bot dies. Linux sends it when the *thread* that forked the child ends, not the
  process: asyncio forks on its loop's thread, which in Switchboard is the main thread and lives as long as
  the process. A loop run in a shorter-lived thread would take its commands with it when it ends, which is
  also when nothing is left to supervise them.
- the group's id, the host's boot id and the program's start time are stored with the attempt, so the
  process that resumes the run can kill what the program started (the signal reaches only the program).

A pid is only trusted together with its start time (``/proc/<pid>/stat`` field 22, in clock ticks since
boot) and the boot id, so a reused pid is never killed. Children that outlive the program are recognised
by the ``SWITCHBOARD_RUN_ID``, ``SWITCHBOARD_STEP`` and ``SWITCHBOARD_ATTEMPT`` variables every step
program inherits, and only inside the recorded group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")
_POLL = 0.05


@dataclass(frozen=True)
class Spawned:
    """A step program just started: its pid and group, and what identifies it beyond the pid."""

    pid: int
    pgid: int
    start_ticks: int | None


@dataclass(frozen=True)
class Orphan:
    """A recorded step program that may have outlived the process that started it."""

    run_id: str
    step: str
    attempt: int
    pid: int | None
    pgid: int | None
    start_ticks: int | None


def boot_id() -> str:
    """This boot of this host (Linux's random boot id); empty where the kernel does not say."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses: cut at the last ')'.
    return raw[raw.rfind(b")") + 2 :].decode("ascii", "replace").split()


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (field 22), or None when it does not exist."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


Preexec = Callable[[], None]


def bound(argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[list[str], Preexec | None]:
    """How to start ``argv`` bound to the bot: the argv to spawn and the ``preexec_fn`` (or None).

    Through util-linux's ``setpriv --pdeathsig KILL`` where it is installed: it arms the signal and execs
    the program in place (same pid, same start time). Without a ``preexec_fn`` Python spawns with vfork,
    which holds the event loop about 5 ms; a fork of a big bot with a ``preexec_fn`` held it 70 ms (p90
    120 ms) at load 8, and a burst of steps made every timer of the process late by the sum. With setpriv
    the program is checked here first (it must exist and be executable), so a missing one still fails as
    ``FileNotFoundError`` (``PermissionError``) and not as setpriv's exit code. Elsewhere, the preexec_fn.
    """
    setpriv = _setpriv()
    if setpriv is None:
        return argv, die_with_parent()
    _check_program(argv[0], env, cwd)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv], None


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, where it knows ``--pdeathsig`` (2.33 and later)."""
    found = shutil.which("setpriv") if LINUX else None
    if found is None:
        return None
    try:
        usage = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return found if "--pdeathsig" in usage else None


def _check_program(program: str, env: dict[str, str], cwd: str | None) -> None:
    """Raise as exec would for a program that cannot be started (a missing working directory included)."""
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(cwd)
    if os.sep in program:
        path = os.path.join(cwd or os.getcwd(), program)
        if not os.path.exists(path):
            raise FileNotFoundError(program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(program)
        return
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(program)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when its parent thread ends (None off Linux)."""
    if not LINUX:
        return None
    return functools.partial(_bind, _prctl(), os.getpid())


@functools.cache
def _prctl() -> Callable[..., int]:
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _bind(prctl: Callable[..., int], parent: int) -> None:
    # Runs in the child between fork and exec: call nothing that may take a lock.
    if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(126)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(126)


def _members(orphan: Orphan) -> set[int]:
    """Live processes that belong to ``orphan``: its program (same pid and start time) and its group."""
    found: set[int] = set()
    leader_ours = (
        orphan.pid is not None
        and orphan.start_ticks is not None
        and start_ticks(orphan.pid) == orphan.start_ticks
    )
    marks = [
        f"SWITCHBOARD_RUN_ID={orphan.run_id}".encode(),
        f"SWITCHBOARD_STEP={orphan.step}".encode(),
        f"SWITCHBOARD_ATTEMPT={orphan.attempt}".encode(),
    ]
    me = os.getpid()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        fields = _stat(pid)
        if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
            continue  # gone, or a zombie: it does nothing more, whoever reaps it
        group = int(fields[2])
        if orphan.pgid is not None and group != orphan.pgid:
            continue
        if (leader_ours and orphan.pgid is not None) or _carries(entry, marks):
            found.add(pid)
    return found


def _carries(entry: Path, marks: list[bytes]) -> bool:
    try:
        env = set((entry / "environ").read_bytes().split(b"\0"))
    except OSError:
        return False  # another user's process, or gone
    return all(mark in env for mark in marks)


async def kill_orphan(orphan: Orphan, timeout: float) -> bool:
    """SIGKILL every process of ``orphan`` and wait until none is left; False if some outlived ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        members = await asyncio.to_thread(_members, orphan)
        if not members:
            return True
        if time.monotonic() > deadline:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if orphan.pgid is not None:
                # A member found in the group proves the group id is still ours (an id stays taken
                # while any member lives), and one signal to the group also catches a fork in between.
                os.killpg(orphan.pgid, signal.SIGKILL)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(_POLL)
