"""A request's e-mails: with ``notify: email``, one outbox item per approver, written in the run's commit.

Each item is a ``chat_posts`` row on the ``email`` platform whose channel names the request and the
approver's identity (``<approval id>/<identity ref>``). The address is looked up when the outbox sends
it, so a lookup that fails (or an SMTP server that is down) is retried like any delivery, and nothing is
lost; the links are signed then too, for the request as it is at that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from types import SimpleNamespace
from typing import Any

from bot.approvals.views import asked_by, read_view, view_of
from bot.config import PLATFORMS
from bot.storage.cards import add_post, post_insert, post_row
from bot.storage.email_links import queued
from bot.storage.journal import Batch
from cards.approval_card import approval_card
from engine.state import RunState

EMAIL = "email"
log = logging.getLogger(__name__)


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
    """The store's hooks for e-mail: one outbox item per approver it can name, and per approver an
    escalation adds."""

    def __init__(
        self,
        console_users: Mapping[str, Collection[str]],
        clock: Callable[[], float],
        smtp_host: str | None = None,
    ) -> None:
        self.console_users = console_users
        self.clock = clock
        self.smtp_host = smtp_host
        self._warned = False

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
        to = recipients(row["approvers"], platform, self.console_users)
        for ref in to:
            batch.add(post_insert(), post_row(EMAIL, channel_of(row["id"], ref), None, card, now))
        if not to:
            log.warning(
                "notify: email: approval %s names no user: approver to mail (approvers: %s)",
                row["id"],
                ", ".join(row["approvers"]) or "anyone",
            )
        if not self.smtp_host and not self._warned:
            self._warned = True  # the items wait, stored, for a bot process with SMTP configured
            log.warning("notify: email: set SWITCHBOARD_SMTP_HOST, or approval e-mails wait unsent")

    async def on_change(self, conn: Any, approval_id: str, event: str, detail: dict[str, Any]) -> None:
        """An escalation rung that adds approvers mails each new one (in the rung's transaction)."""
        added = list(detail.get("add_approvers") or ())
        if event != "escalated" or not added:
            return
        now = self.clock()
        stored = await read_view(conn, approval_id, now)
        if stored is None or not wants_email(stored.row.notify):
            return
        origin = (stored.run.meta or {}).get("origin") or {}
        platform = str(origin.get("platform") or "console")
        channels = [channel_of(approval_id, ref) for ref in recipients(added, platform, self.console_users)]
        mailed = await queued(conn, EMAIL, channels)  # an approver listed already has their mail
        card = approval_card(stored.view)
        for channel in channels:
            if channel not in mailed:
                await add_post(conn, post_row(EMAIL, channel, None, card, now))
