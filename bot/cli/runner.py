"""``switchboard runner``: the remote runner's command line (no settings, no database, no chat)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from bot.runner.agent import Options, run_until_stopped
from bot.runner.client import Refused

log = logging.getLogger(__name__)
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
MAX_CONCURRENCY = 64


def options(args: argparse.Namespace) -> Options:
    """The runner's options from its arguments, each mistake named; ``ValueError`` carries the message."""
    token = (args.token or os.environ.get("SWITCHBOARD_RUNNER_TOKEN", "")).strip()
    if not token:
        raise ValueError("a runner needs a token: --token sbt_... or SWITCHBOARD_RUNNER_TOKEN")
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"--url {args.url!r}: give the server's base URL, e.g. https://switchboard.example")
    if url.scheme == "http" and url.hostname not in LOOPBACK:
        raise ValueError(
            f"--url {args.url!r}: plain http would send the token and the jobs' secrets in clear; use https "
            "(http is accepted for localhost only)"
        )
    labels = tuple(sorted({part.strip() for part in args.labels.split(",") if part.strip()}))
    bad = [label for label in labels if not LABEL.match(label)]
    if not labels or bad:
        raise ValueError(
            f"--labels {args.labels!r}: comma-separated labels of letters, digits, '.', '_', '-'"
        )
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"--concurrency {args.concurrency}: between 1 and {MAX_CONCURRENCY}")
    host = socket.gethostname()
    return Options(
        url=args.url,
        token=token,
        labels=labels,
        concurrency=args.concurrency,
        name=(args.name or host)[:80],
        host=host,
        version=_version(),
        workflows_dir=Path(args.workflows_dir),
    )


def main(args: argparse.Namespace) -> int:
    """Run the runner until SIGTERM or Ctrl-C; 2 when it is refused or misconfigured."""
    try:
        opts = options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(opts))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(opts: Options) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_until_stopped(opts)
    except asyncio.CancelledError:
        log.info("runner stopped; the jobs it held lapse and follow their steps' on_interrupt")


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:
        return "unknown"
