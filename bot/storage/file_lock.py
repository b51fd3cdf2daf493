"""One bot process per SQLite file: an fcntl lock on a file beside the database, held while it runs.

SQLite has one writer at a time; two bot processes on one file would fight over it and share no
leases safely across machines. A second `switchboard run` is refused at start instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.errors import Conflict


class ProcessLock:
    """An exclusive lock on ``<database>.lock``; released by ``release()`` or when the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another process start on the file."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def lock_sqlite_file(database_url: str) -> ProcessLock | None:
    """Take the bot's lock on a SQLite database file; None for PostgreSQL or an in-memory database."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database).expanduser().resolve()
    path = database.with_name(database.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise Conflict(
            f"another `switchboard run` (pid {holder}) is already using the SQLite database {database}. "
            "SQLite serves one bot process; to run several, use PostgreSQL "
            "(DATABASE_URL=postgresql://user@host/dbname)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return ProcessLock(path, fd)
