"""`switchboard run` in a child process, with Slack pointed at the fake Slack Web API (delivery tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.fakes.slack_api import FakeSlack
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildBot:
    """`switchboard run` in a child process: a clean environment (no SWITCHBOARD_, Slack, Discord or Redis
    settings of the caller's), the database, the workflows folder, a free port, and ``env`` on top."""

    def __init__(self, db_url: str, workflows: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_", "REDIS_URL"))
            },
            "DATABASE_URL": db_url,
            "SWITCHBOARD_WORKFLOWS_DIR": str(workflows),
            "PYTHONPATH": str(ROOT),
            "PORT": str(self.port),
            **env,
        }
        self.db_url = db_url
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(self._healthy, 30, "the bot to listen on its port")

    async def _healthy(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class Bot(ChildBot):
    """`switchboard run` in a child process, with Slack pointed at the fake."""

    def __init__(self, fake: FakeSlack, db_url: str, workflows: Path, **env: str) -> None:
        slack = {
            "SWITCHBOARD_CONSOLE": "false",
            "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": fake.signing_secret,
            "SWITCHBOARD_SLACK_API_URL": fake.base_url,
            "SWITCHBOARD_POLL_INTERVAL": "0.1",
        }
        super().__init__(db_url, workflows, **{**slack, **env})
