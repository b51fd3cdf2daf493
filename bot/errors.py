"""The errors a user can cause, each carrying the message the user should see."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from http import HTTPStatus

PROBLEM_MEDIA_TYPE = "application/problem+json"


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


def problem_body(
    status: int, type_uri: str, detail: str, *, title: str | None = None, **extra: object
) -> str:
    """An RFC 9457 problem document as JSON, the one shape every HTTP refusal has (the API's, the hooks').

    ``title`` defaults to the status's reason phrase; ``extra`` members that are None are left out.
    """
    body: dict[str, object] = {
        "type": type_uri,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return json.dumps(body)
