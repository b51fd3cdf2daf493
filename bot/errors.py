"""The errors a user can cause, each carrying the message the user should see."""

from __future__ import annotations


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
