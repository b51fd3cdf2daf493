"""A request's e-mails: with ``notify: email``, one outbox item per approver, written in the run's commit.

Each item is a ``chat_posts`` row on the ``email`` platform whose channel names the request and the
approver's identity (``<approval id>/<identity ref>``). The address is looked up when the outbox sends
it, so a lookup that fails (or an SMTP server that is down) is retried like any delivery, and nothing is
lost; the links are signed then too, for the request as it is at that moment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import SimpleNamespace
from typing import Any

from bot.approvals.views import asked_by, view_of
from bot.config import PLATFORMS
from bot.storage.cards import post_insert, post_row
from bot.storage.journal import Batch
from cards.approval_card import approval_card
from engine.state import RunState

EMAIL = "email"


def wants_email(notify: str) -> bool:
    """Whether a request's ``notify`` (as stored: "email", "channel+email"...) includes e-mail."""
    return EMAIL in notify.split("+")


def recipients(
    approvers: list[str], platform: str, console_users: Mapping[str, Collection[str]]
) -> list[str]:
    """The identity refs a request's e-mail goes to: each ``user:`` approver, on the run's platform.

    ``user:alice`` on a console run is ``console:alice``; ``user:slack:U024`` names its platform itself.
    A ``group:`` entry reaches the console users in that group; chat platforms' groups cannot be listed
    here, so their members are reached through chat.
    """
    found: list[str] = []
    for entry in approvers:
        kind, _, name = entry.partition(":")
        if kind == "user" and name:
            prefix = name.partition(":")[0]
            found.append(name if prefix in PLATFORMS else f"{platform}:{name}")
        elif kind == "group" and platform == "console":
            found += [f"console:{user}" for user, groups in console_users.items() if name in groups]
    return list(dict.fromkeys(found))


def channel_of(approval_id: str, ref: str) -> str:
    """The outbox channel of one approver's e-mail."""
    return f"{approval_id}/{ref}"


def parse_channel(channel: str) -> tuple[str, str]:
    """(approval id, identity ref) from an e-mail item's channel."""
    approval_id, _, ref = channel.partition("/")
    return approval_id, ref


class ApprovalEmails:
    """The store's ``on_request`` hook for e-mail: one outbox item per approver it can name."""

    def __init__(self, console_users: Mapping[str, Collection[str]]) -> None:
        self.console_users = console_users

    def on_request(self, batch: Batch, row: dict[str, Any], state: RunState, now: float) -> None:
        """Queue the request's e-mails in the run's own commit (an automatic approval sends none)."""
        if row["status"] != "pending" or not wants_email(row["notify"]):
            return
        origin = state.meta.get("origin") or {}
        platform = str(origin.get("platform") or "console")  # a CLI run's approvers: console users
        view = view_of(
            SimpleNamespace(**row), workflow=state.workflow.name, asked=asked_by(state.meta, state.started_by)
        )
        card = approval_card(view)  # what the request said when asked; the mail is drawn when sent
        for ref in recipients(row["approvers"], platform, self.console_users):
            batch.add(post_insert(), post_row(EMAIL, channel_of(row["id"], ref), None, card, now))
