"""The ``run`` step kind: start a program (never a shell), capture the tail of its output, stop it cleanly.

The program runs in a session of its own, so a cancel or a timeout can signal everything it started
(SIGTERM to the process group, then SIGKILL after the grace period) and no process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from engine.activities.base import ActivityContext, StepCall, StepFailure

_POLL = 0.05  # seconds between checks of a process group that asyncio cannot wait on
_EXIT_POLL = 0.25  # how often to check for an exited program whose pipes are still open
_ORPHAN_WAIT = 1.0  # how long a background child may hold stdout/stderr after the program exited
_cleanups: set[asyncio.Task[None]] = set()  # strong references, so a shielded cleanup is not collected


class _Tail:
    """The last ``cap`` bytes of a stream, in bounded memory."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]
            self.truncated = True

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
    proc = await _start(argv, env, cwd)
    out, err = _Tail(ctx.output_cap), _Tail(ctx.output_cap)
    assert proc.stdout is not None and proc.stderr is not None
    reading = asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err))
    try:
        code = await _finish(proc, reading, ctx.kill_grace)
    except BaseException:
        # Cancel, the runtime's timeout, or a bug: stop the whole group before letting it through.
        # Shielded, so a second cancel during the grace period cannot leave the group running. The
        # pipes are drained meanwhile: a program blocked writing to a full pipe could not exit.
        cleanup = asyncio.ensure_future(_stop_group(proc, ctx.kill_grace))
        _cleanups.add(cleanup)
        cleanup.add_done_callback(_cleanups.discard)
        cleanup.add_done_callback(lambda _: reading.cancel())
        await asyncio.shield(cleanup)
        raise
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


async def _start(argv: list[str], env: dict[str, str], cwd: str | None) -> asyncio.subprocess.Process:
    program = argv[0]
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,  # a program that reads stdin must not wait on the bot's
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, so cancel can signal its children too
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


async def _pump(stream: asyncio.StreamReader, sink: _Tail) -> None:
    while chunk := await stream.read(64 * 1024):
        sink.add(chunk)


async def _finish(proc: asyncio.subprocess.Process, reading: asyncio.Future[Any], grace: float) -> int:
    """Wait for end of output and for the exit; stop background children that keep the pipes open."""
    loop = asyncio.get_running_loop()
    exited_at: float | None = None
    while not reading.done():
        await asyncio.wait([reading], timeout=_EXIT_POLL)  # returns at once when output ends
        if reading.done() or proc.returncode is None:
            continue
        exited_at = exited_at or loop.time()
        if loop.time() - exited_at >= _ORPHAN_WAIT:
            # `cmd &` without redirection: the program is gone but a child still holds its
            # stdout. asyncio's wait() would wait for that child, so stop the group instead.
            await _stop_group(proc, grace)
            await asyncio.wait([reading], timeout=_POLL)  # the pipes close once their holders die
            reading.cancel()  # unless the holder left the group (setsid): stop reading anyway
            break
    if reading.done() and not reading.cancelled():
        reading.result()  # surfaces a read error instead of hiding it
    # Once the pipes are closed or the program was reaped, wait() returns promptly.
    return await proc.wait()


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
    while proc.returncode is None:  # asyncio's child watcher reaps the program, so no zombie stays
        await asyncio.sleep(0.01)
    await proc.wait()


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
