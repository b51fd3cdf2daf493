"""The ``run`` step kind: start a program (never a shell), capture the tail of its output, stop it cleanly.

The program runs in a session of its own, so a cancel or a timeout can signal everything it started
(SIGTERM to the process group, then SIGKILL after the grace period) and no process is left behind.
It also dies with the bot, and its group is recorded for whoever resumes the run (see processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.activities.processes import Spawned, bound, start_ticks

_POLL = 0.05  # seconds between checks of a process group, which nothing in asyncio can wait on
_ORPHAN_WAIT = 1.0  # how long a background child may hold stdout/stderr after the program exited
_cleanups: set[asyncio.Task[None]] = set()  # strong references, so a shielded cleanup is not collected


class _Tail(asyncio.Protocol):
    """Reads one pipe, keeping the last ``cap`` bytes in bounded memory."""

    def __init__(self, cap: int, tell: Callable[[bytes], None] | None = None) -> None:
        self.cap = cap
        self.tell = tell
        self.data = bytearray()
        self.truncated = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, chunk: bytes) -> None:
        if self.tell is not None:
            self.tell(chunk)
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]
            self.truncated = True

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        data = bytes(self.data)
        if self.truncated:
            # The cut may fall inside a UTF-8 character: skip its continuation bytes.
            data = data[next((i for i, b in enumerate(data[:4]) if b & 0xC0 != 0x80), 0) :]
        return data.decode("utf-8", errors="replace").rstrip("\r\n")


async def execute(call: StepCall, ctx: ActivityContext) -> dict[str, Any]:
    """Run the step's program to completion and return its output and exit code."""
    argv = [str(arg) for arg in call.params.get("argv") or []]
    if not argv:
        raise StepFailure("command", "'run' needs at least the program to start")
    cwd = call.params.get("cwd")
    env = {**os.environ, **{str(k): str(v) for k, v in (call.params.get("env") or {}).items()}}
    env.update(
        SWITCHBOARD_RUN_ID=call.run_id,
        SWITCHBOARD_STEP=call.step_key,
        SWITCHBOARD_ATTEMPT=str(call.attempt),
        SWITCHBOARD_IDEMPOTENCY_KEY=call.idempotency_key,
    )
    started = time.monotonic()
    # Our own pipes rather than asyncio's PIPE: with PIPE, Process.wait() also waits until every
    # holder of the pipes is gone, so a background child (`cmd &`) would hang the step.
    transports: list[asyncio.BaseTransport] = []
    write_fds: list[int] = []  # the child's ends, closed here once it has its own copies
    try:
        out = await _open_pipe(ctx.output_cap, transports, write_fds, ctx.on_output)
        err = await _open_pipe(ctx.output_cap, transports, write_fds, ctx.on_output)
        try:
            proc = await _start(argv, env, cwd, *write_fds)
        finally:
            while write_fds:  # ours would keep the pipes open after the child's are gone
                os.close(write_fds.pop())
        try:
            if ctx.on_spawn is not None:
                await ctx.on_spawn(call, Spawned(proc.pid, proc.pid, start_ticks(proc.pid)))
            code = await _finish(proc, [out, err], ctx.kill_grace)
        except BaseException:
            # Cancel, the runtime's timeout, or a bug: stop the whole group before letting it through.
            # Shielded, so a second cancel during the grace period cannot leave the group running.
            cleanup = asyncio.ensure_future(_stop_group(proc, ctx.kill_grace))
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
            await asyncio.shield(cleanup)
            raise
    finally:
        for fd in write_fds:
            os.close(fd)
        for transport in transports:
            transport.close()
    stderr = err.text()
    result: dict[str, Any] = {
        "stdout": out.text(),
        "stderr": stderr,
        "exit_code": code,
        "duration": round(time.monotonic() - started, 3),
        "truncated": out.truncated or err.truncated,
    }
    if code != 0:
        message = f"exited with code {code}"
        if code < 0:
            message += f" (killed by signal {_signal_name(-code)})"
        last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
        raise StepFailure("command", f"{message}: {last[:300]}" if last else message, result)
    return result


async def _open_pipe(
    cap: int,
    transports: list[asyncio.BaseTransport],
    write_fds: list[int],
    tell: Callable[[bytes], None] | None = None,
) -> _Tail:
    read_fd, write_fd = os.pipe()
    write_fds.append(write_fd)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    try:
        transport, tail = await asyncio.get_running_loop().connect_read_pipe(lambda: _Tail(cap, tell), pipe)
    except BaseException:
        pipe.close()
        raise
    transports.append(transport)  # from here on the transport owns the read end
    return tail


async def _start(
    argv: list[str], env: dict[str, str], cwd: str | None, stdout: int, stderr: int
) -> asyncio.subprocess.Process:
    program = argv[0]
    try:
        spawned, preexec = bound(argv, env, cwd)  # SIGKILL when the bot dies; its group is killed on resume
        return await asyncio.create_subprocess_exec(
            *spawned,
            stdin=asyncio.subprocess.DEVNULL,  # a program that reads stdin must not wait on the bot's
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, so cancel can signal its children too
            preexec_fn=preexec,
        )
    except FileNotFoundError:
        if cwd is not None and not os.path.isdir(cwd):
            raise StepFailure("command", f"working directory '{cwd}' does not exist") from None
        where = "" if os.sep in program else " on PATH"
        raise StepFailure("command", f"program '{program}' was not found{where}") from None
    except PermissionError:
        raise StepFailure("command", f"program '{program}' is not executable (permission denied)") from None
    except OSError as exc:
        raise StepFailure("command", f"could not start '{program}': {exc.strerror or exc}") from None


async def _finish(proc: asyncio.subprocess.Process, tails: list[_Tail], grace: float) -> int:
    """Wait for the program to exit and its output to end; stop background children keeping it open."""
    code = await proc.wait()
    ends = [tail.closed for tail in tails]
    _, open_ = await asyncio.wait(ends, timeout=_ORPHAN_WAIT)
    if open_:
        # `cmd &` without redirection: the program is gone but a child still writes to its output.
        # Stop the group; a child that left it (setsid) loses its pipes when they are closed.
        await _stop_group(proc, grace)
        await asyncio.wait(ends, timeout=_POLL)
    return code


async def _stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` for it to go, SIGKILL what is left, then reap."""
    group = proc.pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(group) and time.monotonic() < deadline:
        await asyncio.sleep(min(_POLL, grace))
    _signal_group(group, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # belt and braces: the program itself, should it have left its group
    await proc.wait()  # asyncio's child watcher reaps the program, so no zombie is left


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    # Children that exited but were not yet reaped by init still count, so on a host whose PID 1
    # does not reap, this waits the whole grace period (harmless: SIGKILL to a zombie is a no-op).
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
