"""An approval request's chat presence: its card, edited in place as votes arrive, and its thread replies.

Rows are written in the transaction of the change that caused them: a new request's card in the run's
commit (``on_request``), each later change (a vote, the decision, an escalation, the expiry) inside the
store's transaction (``on_change``). The outbox then delivers what is stored and coalesces edits, so the
card ends in the state the database ends in, however many people click at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.approvals.views import Stored, asked_by, display, view_for, view_of
from bot.storage.approvals import request_and_run
from bot.storage.cards import add_post, card_places, card_row, card_upsert, post_row, redraw
from bot.storage.journal import Batch
from cards.approval_card import ApprovalView, Vote, approval_card
from cards.model import Card
from engine.approval_flow import latest_feedback
from engine.state import RunState

SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
DISCORD_USER = re.compile(r"\d{17,20}")  # a snowflake: user ids have 17 to 20 digits


def dm_channel(platform: str, user: str, console_users: Collection[str] = ()) -> str | None:
    """Where a direct message to ``user`` goes on ``platform``, or None where Switchboard cannot send one.

    Slack's ``chat.postMessage`` takes a user id as its channel and posts in the bot's DM with that person
    (its answer names the DM's own channel, which the later edits use). Discord needs a DM channel opened
    first, so a Discord user id becomes the address ``dm:<user id>``, which the adapter opens (and
    remembers) before posting; its answer names the DM channel too. Only ids reach anyone: a name such as
    ``user:carol`` cannot be looked up to a person on either platform. On the console a known user's DM
    is the channel ``@<name>``. Where no DM is possible the card goes to the channel, with a note saying so.
    """
    if platform == "slack" and SLACK_USER.fullmatch(user):
        return user
    if platform == "discord" and DISCORD_USER.fullmatch(user):
        return f"dm:{user}"
    if platform == "console" and user in console_users:
        return f"@{user}"
    return None


@dataclass(frozen=True)
class Target:
    """One card of a request: the channel card, or a DM card for one approver."""

    key: str
    channel: str
    user: str | None = None


def targets(
    approval_id: str,
    platform: str,
    home: str,
    notify: str,
    approvers: list[str],
    console_users: Collection[str] = (),
) -> tuple[list[Target], str | None]:
    """Where a request's cards go (``home`` is its channel), and the note for the channel card, if any."""
    key = f"approval:{approval_id}"
    ways = notify.split("+")
    if "channel" not in ways and "dm" not in ways:
        return [], None  # `notify: email` alone: the request has no chat card
    if "dm" not in ways:
        return [Target(key, home)], None
    dms: list[Target] = []
    unreached: list[str] = []
    for entry in approvers:
        kind, _, name = entry.partition(":")
        to = dm_channel(platform, name, console_users) if kind == "user" else None
        if to is None:
            unreached.append(entry)
        else:
            dms.append(Target(f"{key}:dm:{name}", to, name))
    if dms and not unreached:
        return dms, None
    if dms:
        sent = ", ".join(f"user:{t.user}" for t in dms)
        return [Target(key, home), *dms], f"notify: dm: sent by DM to {sent}; posted here for the rest"
    return [Target(key, home)], f"notify: dm: no direct messages on {platform} for these approvers yet"


def unanswered(approvers: tuple[str, ...], voters: tuple[str, ...], known: dict[str, str]) -> list[str]:
    """The approver entries still to answer, as a reminder names them ("@bob", "group:release-managers")."""
    answered = {n.lower() for ref in voters for n in (ref, ref.partition(":")[2], known.get(ref, "")) if n}
    waiting = []
    for entry in approvers:
        kind, _, name = entry.partition(":")
        if kind != "user":
            waiting.append(entry)  # a group answers when enough of its members have
        elif name.lower() not in answered:
            waiting.append(f"@{name}")
    return waiting


def reminder(view: ApprovalView, waiting: list[str], added: list[str]) -> Card:
    """The thread reply of an escalation rung: who is still to answer, and who was added."""
    done = len(view.by("approve"))
    parts = [f"⏰ *{view.title}* is still waiting on {', '.join(waiting) or 'a decision'}"]
    parts[0] += f" ({done} of {view.required} approved so far)."
    if added:
        parts.append(f"Added as approvers: {', '.join(added)}.")
    text = " ".join(parts)
    return Card(title="Approval reminder", text=text, colour="warning", fallback=text)


class ApprovalChat:
    """The store's ``on_request`` and ``on_change`` hooks: approval cards and replies into the outbox."""

    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], float], console_users: Collection[str] = ()
    ) -> None:
        self.console_users = tuple(console_users)
        self.upsert = card_upsert(engine)
        self.clock = clock

    def on_request(self, batch: Batch, row: dict[str, Any], state: RunState, now: float) -> None:
        """Post a new request's card(s) where the run's chat origin says, in the run's own commit."""
        origin = state.meta.get("origin")
        if not origin or row["status"] != "pending":
            return  # CLI runs have no chat; an automatic approval shows on the run's card only
        platform = origin["platform"]
        wanted, note = targets(
            row["id"],
            platform,
            row["channel"] or origin["channel"],
            row["notify"],
            row["approvers"],
            self.console_users,
        )
        previous = None
        if row["revision"] > 1:
            asked = latest_feedback(state.steps)
            if asked.get("decided_by"):
                by = str(asked["decided_by"])
                name = asked.get("decided_by_name")
                shown = display(by, {by: str(name).lstrip("@")} if name else {}, platform)
                previous = Vote(shown, "changes", asked.get("feedback"))
        view = view_of(
            SimpleNamespace(**row),
            workflow=state.workflow.name,
            asked=asked_by(state.meta, state.started_by, platform),
            previous=previous,
            now=now,
            on=platform,
        )
        card = approval_card(replace(view, note=note))
        for target in wanted:
            batch.add(self.upsert, card_row(target.key, platform, target.channel, card, now))

    async def on_change(self, conn: Any, approval_id: str, event: str, detail: dict[str, Any]) -> None:
        """Redraw the request's cards after a vote, decision, escalation or expiry; remind in the thread."""
        key = f"approval:{approval_id}"
        found = await request_and_run(conn, approval_id)  # its approvers as they are now, and its run
        assert found is not None, f"approval {approval_id} changed but cannot be read"
        approvers = found[0].approvers or []
        # Every card the request can have, by exact key: primary-key lookups, however big the table.
        keys = [key, *(f"{key}:dm:{e.partition(':')[2]}" for e in approvers if e.startswith("user:"))]
        cards = await card_places(conn, keys)
        if not cards:
            return  # the request has no chat presence (its run was started from the CLI)
        now = self.clock()
        platform = cards[0].platform
        stored = await view_for(conn, *found, now, platform)
        origin = (stored.run.meta or {}).get("origin") or {}
        home = stored.row.channel or origin.get("channel") or cards[0].channel
        wanted, note = targets(
            approval_id, platform, home, stored.row.notify, stored.row.approvers, self.console_users
        )
        card = approval_card(replace(stored.view, note=note))
        have = {c.key: c for c in cards}
        for target in wanted:
            if target.key not in have:  # an approver added by escalation gets their own DM card
                await conn.execute(self.upsert, card_row(target.key, platform, target.channel, card, now))
        await redraw(conn, list(have), card, now)
        if event == "escalated" and (detail.get("remind") or detail.get("add_approvers")):
            await self._remind(conn, stored, list(have.values()), list(detail.get("add_approvers") or ()))

    async def _remind(self, conn: Any, stored: Stored, cards: list[Any], added: list[str]) -> None:
        """A reply under the channel card, and under the DM card of each approver who has not answered."""
        waiting = unanswered(stored.view.approvers, stored.voters, stored.known)
        post = reminder(stored.view, waiting, added)
        now = self.clock()
        for card in cards:
            _, _, user = card.key.partition(":dm:")
            if user and f"@{user}" not in waiting:
                continue
            row = post_row(card.platform, card.channel, card.key, post, now)
            await add_post(conn, row)
