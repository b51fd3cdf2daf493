"""The CLI's log lines on stderr."""

from __future__ import annotations

import logging

from bot.log_context import JsonFormatter
from bot.storage import redaction


def configure_logging(level: str, fmt: str = "text") -> None:
    """Logs on stderr: plain, timestamped lines, or (``fmt="json"``) one JSON object a line."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        handler.addFilter(redaction.LogMask())  # a traceback may quote a secret an action was given
    logging.getLogger("alembic").setLevel(logging.WARNING)
