"""The errors a user can cause, each carrying the message the user should see."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass


class SwitchboardError(Exception):
    """Base of every user-facing error; ``str(error)`` is the message to show."""

    exit_code = 1


class BadInput(SwitchboardError):
    """The user asked for something malformed: a bad argument, a bad file, a bad setting."""

    exit_code = 2


class NotPermitted(SwitchboardError):
    """The user may not do this; the message says who may."""


class NotFound(SwitchboardError):
    """A run, workflow or approval that does not exist."""


class Conflict(SwitchboardError):
    """The thing exists but is in a state that does not allow the request."""


class UpstreamUnavailable(SwitchboardError):
    """A service Switchboard depends on did not answer."""


@dataclass(frozen=True)
class Unexpected:
    """An error no one planned for: its traceback is logged under ``ref``; the user sees only the ref."""

    ref: str

    @property
    def message(self) -> str:
        """What a user is shown, on every surface alike."""
        return f"Something went wrong (ref {self.ref}). The details are in Switchboard's log."


def log_unexpected(log: logging.Logger, what: str, *args: object) -> Unexpected:
    """Log the exception being handled, with ``what`` (a %-format of ``args``) and a fresh ref."""
    found = Unexpected(secrets.token_hex(3))
    log.exception(f"{what} (ref %s)", *args, found.ref, extra={"ref": found.ref})
    return found
