"""The human side of a conversation: claim, relay, release, transfer, resolve, hand back, and deadlines.

A claim is one compare-and-set on the conversation's row (PENDING_HUMAN → HUMAN_ACTIVE), so of any
number of agents clicking at once exactly one wins; the others are told who did. The handover card is
redrawn in the same transaction as each change, so it ends in the state the database ends in.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversations import context, deadlines
from bot.conversations.outbound import fallback_channel
from bot.conversations.ratings import ask_for_rating
from bot.conversations.routing import pick_agent, qualified
from bot.errors import BadInput, NotFound, NotPermitted
from bot.identity import Identity, allowed, describe, shown
from bot.storage.conversations.rows import Conversation
from bot.storage.conversations.states import AI_SPEAKS, State
from bot.storage.timers import claim_timer
from cards.approval_card import hhmm
from cards.conversation_card import HandoverView, handover_card, notice, relayed

if TYPE_CHECKING:
    from bot.conversations.service import Conversations

log = logging.getLogger(__name__)
NOTE_PREFIX = "//"


def view_of(conv: Conversation) -> HandoverView:
    """What the handover card shows."""
    return HandoverView(
        id=conv.id,
        user=conv.user.name,
        platform=conv.platform,
        state=conv.state.value,
        reason=conv.reason or "user_request",
        priority=conv.priority_name,
        skills=conv.skills,
        summary=conv.summary,
        tried=conv.tried,
        suggested=conv.suggested,
        queued_at=conv.queued_at,
        agent=_agent(conv),
        offered_to=conv.offered_to,
        resolution=conv.resolution,
        escalated=conv.escalated,
    )


def _agent(conv: Conversation) -> str | None:
    """The agent holding ``conv`` as its card names them: a mention on their own platform, else "@name"."""
    if conv.agent_ref is None:
        return f"@{conv.agent_name}" if conv.agent_name else None
    return shown(conv.agent_ref, {conv.agent_ref: conv.agent_name or ""}, conv.platform)


class Desk:
    def __init__(self, service: Conversations) -> None:
        self.service = service
        self.store = service.store
        self.out = service.out
        self.engine = service.engine
        self.settings = service.settings

    async def draw(self, conn: AsyncConnection, conv: Conversation, now: float) -> bool:
        """Write the handover card as ``conv`` now is (False: no agents' channel on its platform)."""
        return await self.out.card(conn, conv, handover_card(view_of(conv), now), now)

    async def _current(self, conn: AsyncConnection, conv_id: str) -> Conversation:
        conv = await self.store.get(conv_id, conn)
        assert conv is not None
        return conv

    # -- agents' buttons -------------------------------------------------------------------------

    def check_agent(self, who: Identity) -> None:
        entries = self.settings.agent_groups
        if entries and not who.admin and not allowed(entries, who):
            raise NotPermitted(f"Only agents may do that. Agents: {describe(entries)}.")

    async def get(self, conv_id: str) -> Conversation:
        conv = await self.store.find(conv_id)
        if conv is None:
            raise NotFound(f"There is no conversation {conv_id}.")
        return conv

    async def claim(self, conv_id: str, who: Identity) -> str:
        """Take a queued conversation; exactly one of many simultaneous claims wins."""
        self.check_agent(who)
        conv = await self.get(conv_id)
        agent = await self.store.agent(who.ref) or await self.store.set_agent(
            who, self.service.clock(), available=True, capacity=self.settings.agent_capacity
        )
        if conv.state == State.PENDING_HUMAN and conv.offered_to not in (None, who.ref):
            raise NotPermitted(f"This conversation is offered to {conv.offered_to}.")
        now = self.service.clock()
        async with self.engine.begin() as conn:
            won = await self.store.move(
                conn,
                conv,
                State.HUMAN_ACTIVE,
                who.ref,
                now,
                {
                    "agent_ref": who.ref,
                    "agent_name": who.name,
                    "claimed_at": now,
                    "reminded": False,
                    "offered_to": None,
                    "warned": False,
                },
                {"agent": who.ref},
            )
            if not won:
                current = await self._current(conn, conv.id)
                if current.state == State.HUMAN_ACTIVE and current.agent_ref == who.ref:
                    # A second click (or a retried delivery) by the agent who already has it.
                    kind, state = "claim_repeated", current.state
                    await self.store.event(conn, conv.id, now, who.ref, kind, state, None, {})
                    user = current.user.name
                    return f"You already have this conversation with {user}; reply in its thread."
                await self.store.event(conn, conv.id, now, who.ref, "claim_refused", current.state, None, {})
                return _refusal(current)
            await self.store.lock_agent(conn, who.ref)  # one agent's claims in a row: capacity holds
            load = await self.store.load_of(conn, who.ref)
            if load > agent.capacity:
                raise BadInput(
                    f"You already hold {load - 1} conversations (your capacity is {agent.capacity})."
                )
            await self.store.agent_busy(conn, who.ref, now)
            claimed = await self._current(conn, conv.id)
            await self.draw(conn, claimed, now)
            text = f"{who.name} from the support team has joined the conversation."
            await self.store.add_message(conn, conv.id, "system", text, now, author_name="Switchboard")
            await self.out.to_user(conn, claimed, notice(text), now)
            await self.out.to_agents(
                conn,
                claimed,
                notice(
                    f"Claimed by {shown(who.ref, {who.ref: who.name}, conv.platform)}. "
                    f"Write here to talk to {conv.user.name}; "
                    "start with // for a note."
                ),
                now,
            )
        self.service.wake()
        if conv.queued_at is not None:
            self.service.runtime.metrics.queue_wait.observe(max(now - conv.queued_at, 0.0))
        return f"You have claimed the conversation with {conv.user.name}. Reply in the card's thread."

    async def auto_assign(self, conv_id: str) -> bool:
        """Auto-assign mode: the least-loaded available agent with the skills (ties: idle longest)."""
        conv = await self.store.get(conv_id)
        if conv is None or conv.state != State.PENDING_HUMAN:
            return False
        agent = pick_agent(await self.store.agents(), conv.skills, conv.offered_to)
        if agent is None:
            return False
        who = Identity(agent.platform, "", agent.ref.partition(":")[2], agent.name)
        try:
            await self.claim(conv_id, who)
        except (BadInput, NotPermitted):
            return False
        return True

    def check_holder(self, conv: Conversation, who: Identity) -> None:
        if conv.state != State.HUMAN_ACTIVE:
            raise BadInput(f"The conversation is {conv.state.value.lower().replace('_', ' ')}, not claimed.")
        if conv.agent_ref != who.ref and not who.admin:
            raise NotPermitted(f"Only @{conv.agent_name}, who claimed it, can do that.")

    async def resolve(self, conv_id: str, who: Identity, resolution: str | None = None) -> str:
        """Close the conversation: the user is told, the transcript stored and posted in the card's thread."""
        conv = await self.get(conv_id)
        if conv.state == State.HUMAN_ACTIVE:
            self.check_holder(conv, who)
        else:
            self.check_agent(who)
        done = resolution or f"Resolved by {who.name}."
        if not await self._close(
            conv, who.ref, done, f"{who.name} has marked this conversation as resolved.", rating=True
        ):
            raise BadInput("The conversation changed just now; look at its card again.")
        return "Resolved. The transcript is in the thread."

    async def _close(
        self, conv: Conversation, actor: str, resolution: str, tell: str, rating: bool = False
    ) -> bool:
        now = self.service.clock()
        async with self.engine.begin() as conn:
            if not await self.store.move(conn, conv, State.RESOLVED, actor, now, {"resolution": resolution}):
                return False
            closed = await self._current(conn, conv.id)
            await self.store.add_message(conn, conv.id, "system", tell, now, author_name="Switchboard")
            await self.out.to_user(conn, closed, notice(tell, "success"), now)
            if rating:
                await ask_for_rating(self.service, conn, closed, now)
            await self.draw(conn, closed, now)
            history = await self.store.messages(conv.id)
            text = context.transcript(closed, history, hhmm)
            await self.store.save_transcript(conn, conv.id, text, now)
            await self.out.to_agents(conn, closed, notice(f"Transcript\n{text}", "neutral"), now)
        self.service.wake()
        if conv.state == State.HUMAN_ACTIVE and conv.claimed_at is not None:
            self.service.runtime.metrics.queue_handle.observe(max(now - conv.claimed_at, 0.0))
        return True

    async def back_to_ai(self, conv_id: str, who: Identity, note: str) -> str:
        """Hand the conversation back to the assistant, with a note it will read."""
        conv = await self.get(conv_id)
        self.check_holder(conv, who)
        now = self.service.clock()
        async with self.engine.begin() as conn:
            if not await self.store.move(conn, conv, State.BACK_TO_AI, who.ref, now, {"note": note or None}):
                raise BadInput("The conversation changed just now; look at its card again.")
            back = await self._current(conn, conv.id)
            text = "You are back with the assistant. Ask for a person again at any time."
            await self.store.add_message(conn, conv.id, "system", text, now, author_name="Switchboard")
            await self.out.to_user(conn, back, notice(text), now)
            await self.draw(conn, back, now)
        self.service.wake()
        return "Handed back to the assistant."

    async def release(self, conv_id: str, who: Identity, reason: str = "released") -> str:
        """Put a claimed conversation back in the queue for anyone to claim."""
        conv = await self.get(conv_id)
        self.check_holder(conv, who)
        await self._requeue(conv, who.ref, reason, skills=None, offered_to=None)
        return "Released: the conversation is back in the queue."

    async def transfer(self, conv_id: str, who: Identity, target: str) -> str:
        """Send a conversation to a skill (``billing``) or a named agent (``@bob`` or ``slack:U024BE7LH``)."""
        self.check_agent(who)
        conv = await self.get(conv_id)
        if conv.state == State.HUMAN_ACTIVE:
            self.check_holder(conv, who)
        elif conv.state != State.PENDING_HUMAN:
            raise BadInput("Only a queued or claimed conversation can be transferred.")
        target = target.strip()
        if not target:
            raise BadInput("Transfer to whom? Give a skill (billing) or an agent (@bob).")
        if target.startswith("@") or ":" in target:
            name = target.lstrip("@").lower()
            match = [a for a in await self.store.agents() if a.ref.lower() == name or a.name.lower() == name]
            if not match:
                raise NotFound(f"No agent called {target}. /queue lists the agents.")
            await self._requeue(conv, who.ref, "transferred", skills=None, offered_to=match[0].ref)
            return f"Transferred to @{match[0].name}."
        await self._requeue(conv, who.ref, "transferred", skills=[target], offered_to=None)
        return f"Transferred to agents with the skill {target}."

    async def _requeue(
        self, conv: Conversation, actor: str, reason: str, skills: list[str] | None, offered_to: str | None
    ) -> None:
        now = self.service.clock()
        values: dict[str, Any] = {
            "agent_ref": None,
            "agent_name": None,
            "queued_at": now,
            "pings": 0,
            "escalated": False,
            "offered_to": offered_to,
        }
        if skills is not None:
            values["skills"] = skills
        async with self.engine.begin() as conn:
            if not await self.store.move(
                conn, conv, State.PENDING_HUMAN, actor, now, values, {"why": reason}
            ):
                raise BadInput("The conversation changed just now; look at its card again.")
            queued = await self._current(conn, conv.id)
            await self.draw(conn, queued, now)
            if conv.state == State.HUMAN_ACTIVE:
                text = "Your agent had to step away; you are back in the queue for the next agent."
                await self.out.to_user(conn, queued, notice(text), now)
            await self.out.to_agents(conn, queued, notice(f"Back in the queue ({reason})."), now)
            due = deadlines.next_at(queued, self.service.policy)
            if due is not None:
                await self.out.timer(conn, conv.id, due)
        if due is not None:
            self.service.runtime.alarm.arm(due)
        self.service.wake()
        if self.settings.handover_mode == "auto":
            await self.auto_assign(conv.id)

    # -- the agents' thread ----------------------------------------------------------------------

    async def agent_said(self, conv: Conversation, who: Identity, text: str, event_key: str | None) -> None:
        """A message in the handover card's thread: relayed to the user if its author holds it."""
        now = self.service.clock()
        note = text.startswith(NOTE_PREFIX)
        holder = conv.state == State.HUMAN_ACTIVE and conv.agent_ref == who.ref
        try:
            async with self.engine.begin() as conn:
                if note or not holder:
                    await self.store.add_message(conn, conv.id, "note", text, now, who, event_key)
                    if not note:
                        why = (
                            f"Not sent to {conv.user.name}: only @{conv.agent_name}, who claimed it, "
                            "talks to them."
                            if conv.state == State.HUMAN_ACTIVE
                            else f"Not sent to {conv.user.name}: claim the conversation first."
                        )
                        await self.out.to_agents(
                            conn, conv, notice(why + " Start with // for a note.", "warning"), now
                        )
                    return
                values: dict[str, Any] = {"last_agent_at": now, "reminded": False, "warned": False}
                if conv.first_human_at is None:
                    values["first_human_at"] = now
                if not await self.store.agent_replied(conn, conv.id, who.ref, values):
                    return
                await self.store.add_message(conn, conv.id, "agent", text, now, who, event_key)
                await self.out.to_user(conn, conv, relayed(who.name, text, "support"), now)
                due = deadlines.next_at(replace(conv, last_agent_at=now), self.service.policy)
                if due is not None:
                    await self.out.timer(conn, conv.id, due)
        except sa.exc.IntegrityError:
            return  # a repeated delivery
        if due is not None:
            self.service.runtime.alarm.arm(due)
        self.service.wake()

    # -- deadlines -------------------------------------------------------------------------------

    async def tick(self, timer_id: int, conv_id: str) -> bool:
        """A conversation's timer rang: act on whatever deadline has passed, then arm the next one."""
        now = self.service.clock()
        async with self.engine.begin() as conn:
            if not await claim_timer(conn, timer_id, now):
                return False  # another process fired it
        conv = await self.store.get(conv_id)
        if conv is None or conv.closed_at is not None:
            return True
        for kind in deadlines.due(conv, now, self.service.policy):
            await self._act(kind, conv_id, now)
        conv = await self.store.get(conv_id)
        if conv is not None and conv.closed_at is None:
            due = deadlines.next_at(conv, self.service.policy)
            if due is not None:
                due = max(due, now + 1.0)
                async with self.engine.begin() as conn:
                    await self.out.timer(conn, conv_id, due)
                self.service.runtime.alarm.arm(due)
        return True

    async def _act(self, kind: str, conv_id: str, now: float) -> None:
        conv = await self.store.get(conv_id)
        if conv is None or conv.closed_at is not None:
            return
        if kind == "close":
            if conv.state in AI_SPEAKS:
                async with self.engine.begin() as conn:
                    await self.store.move(
                        conn,
                        conv,
                        State.FINISHED,
                        "switchboard",
                        now,
                        {"resolution": "no reply from the user"},
                    )
                return
            minutes = round(self.service.policy.user_close / 60)
            await self._close(
                conv,
                "switchboard",
                f"closed after {minutes} min without a reply",
                f"This conversation was closed after {minutes} minutes without a reply. "
                "Write again any time.",
            )
            return
        if kind == "offer":
            await self._requeue(conv, "switchboard", f"@{conv.agent_name} did not answer", None, None)
            return
        async with self.engine.begin() as conn:
            if kind == "reping":
                await self.store.touch(conn, conv.id, pings=conv.pings + 1)
                on_duty = [a for a in await self.store.agents() if a.available and qualified(a, conv.skills)]
                names = " ".join(f"@{a.name}" for a in on_duty) or "@here"
                text = f"{names} {conv.user.name} is still waiting for an agent."
                await self.out.to_agents(conn, conv, notice(text, "warning"), now)
                await self.draw(conn, replace(conv, pings=conv.pings + 1), now)
            elif kind == "escalate":
                await self.store.touch(conn, conv.id, escalated=True)
                where = fallback_channel(self.settings, conv.platform)
                text = (
                    f"Nobody has claimed the conversation with {conv.user.name} ({conv.id}) for "
                    f"{round(self.service.policy.escalate / 60)} minutes."
                )
                if where is not None:
                    await self.out.to_channel(conn, conv.platform, where, notice(text, "danger"), now)
                await self.out.to_agents(conn, conv, notice(f"Escalated: {text}", "danger"), now)
                await self.draw(conn, replace(conv, escalated=True), now)
            elif kind == "remind_agent":
                await self.store.touch(conn, conv.id, reminded=True)
                text = f"@{conv.agent_name} {conv.user.name} is waiting for your reply."
                await self.out.to_agents(conn, conv, notice(text, "warning"), now)
            elif kind == "warn_user":
                await self.store.touch(conn, conv.id, warned=True)
                minutes = round((self.service.policy.user_close - self.service.policy.user_warn) / 60)
                text = f"Are you still there? This conversation closes in {minutes} minutes without a reply."
                await self.out.to_user(conn, conv, notice(text, "warning"), now)
            await self.store.event(conn, conv.id, now, "switchboard", kind, conv.state, None, {})
        self.service.wake()


def _refusal(conv: Conversation) -> str:
    if conv.state == State.HUMAN_ACTIVE:
        return f"Already claimed by @{conv.agent_name}."
    if conv.closed_at is not None:
        return f"This conversation is already {conv.state.value.lower()}."
    return "This conversation is not waiting for an agent any more."
