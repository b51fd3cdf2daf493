"""`switchboard run` and other CLI commands as real child processes, for lease and connection tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(db_url: str, workflows: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a child `switchboard` process on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_"))}
    env.update(
        {
            "DATABASE_URL": db_url,
            "SWITCHBOARD_WORKFLOWS_DIR": str(workflows),
            "PYTHONPATH": str(ROOT),
            "SWITCHBOARD_CONSOLE": "false",
            "SWITCHBOARD_POLL_INTERVAL": "0.1",
            "SWITCHBOARD_KILL_GRACE": "0.5",
            "SWITCHBOARD_LEASE_SECONDS": "30",
        }
    )
    env.update(extra)
    return env


def cli(db_url: str, workflows: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to its end."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=cli_env(db_url, workflows, **extra),
        text=True,
        capture_output=True,
        timeout=120,
    )


class Bot:
    """`switchboard run` in a child process (no chat platform), on the test's database."""

    def __init__(self, db_url: str, workflows: Path, **extra: str) -> None:
        self.port = free_port()
        self.env = cli_env(db_url, workflows, PORT=str(self.port), **extra)
        self.proc: subprocess.Popen[str] | None = None
        # A file, not a pipe: a pipe nobody reads would fill and block the bot.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in close())

    def output(self) -> str:
        """What the bot logged so far."""
        self.log.seek(0)
        return self.log.read()

    def spawn(self) -> subprocess.Popen[str]:
        """Start the process without waiting for it to listen."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run"],
            env=self.env,
            text=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self.proc

    async def start(self) -> None:
        """Start it and wait until it listens (it has resumed what it could by then)."""
        self.spawn()
        await eventually(self._healthy, 60, "the bot to listen on its port")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the bot exited: {self.output()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    def kill(self, reap: bool = True) -> None:
        """SIGKILL; without ``reap`` the process stays a zombie (its parent, the test, never waits for it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        if reap:
            self.proc.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM, as a service manager stops it; returns its exit code."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
