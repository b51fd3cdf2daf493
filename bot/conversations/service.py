"""The conversation service: takes what users write, runs the assistant's turns, and hands over.

A user's message is stored first (a retried delivery is the same message), then, while the assistant
owns the conversation, a turn is scheduled after a short quiet window so quick messages make one turn.
A turn runs under the conversation's lock; its reply is stored and queued for sending only by a
compare-and-set that the conversation is still the assistant's and the turn not yet answered. The
human side (claims, relays, resolves) lives in ``bot.conversations.desk``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bot import log_context
from bot.config import Settings
from bot.conversations import context
from bot.conversations.assistant import Assistant, AssistantUnavailable, Finished, HandedOver
from bot.conversations.deadlines import Policy, next_at
from bot.conversations.handover_file import load_handover_file
from bot.conversations.handover_rules import Rules, rules_for
from bot.conversations.live_replies import WITHDRAWN, LiveReplies
from bot.conversations.locks import Locks
from bot.conversations.outbound import Outbound
from bot.conversations.ratings import ask_for_rating
from bot.conversations.routing import describe_wait, estimated_wait, position
from bot.conversations.toolbox import ConversationTools
from bot.delivery.live import Preview
from bot.owners import is_dead
from bot.storage.conversations.rows import Conversation, Inbound, Message, priority_of
from bot.storage.conversations.states import AI_SPEAKS, WITH_HUMANS, State
from bot.storage.conversations.store import ConversationStore
from bot.storage.conversations.tables import conversations
from cards.approval_card import hhmm
from cards.conversation_card import assistant_reply, notice, relayed
from engine.handover_spec import WorkflowHandover
from engine.loader import WorkflowInvalid, WorkflowNotFound

if TYPE_CHECKING:
    from bot.conversations.desk import Desk
    from bot.runtime.catalog import Catalog
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)
RECENT_REPLIES = 3  # an assistant reply identical to one of these is sent marked as a repeat
REPEATED = "\n\n(The same answer as before. If it does not help, ask for a person.)"
SO_FAR = 12  # messages shown in the agents' thread at a handover
TURN_DONE = {"turn_owner": None, "turn_until": None}  # a stored answer ends the turn's claim with it


class Conversations:
    """Everything a conversation does, from the first message to the transcript."""

    def __init__(
        self,
        runtime: Runtime,
        catalog: Catalog,
        locks: Locks,
        assistant: Assistant | None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        from bot.conversations.desk import Desk

        self.runtime = runtime
        self.catalog = catalog
        self.settings: Settings = runtime.settings
        self.engine = runtime.store.engine
        self.store = ConversationStore(self.engine)
        self.out = Outbound(self.engine, self.settings)
        self.locks = locks
        self.assistant = assistant
        self.wake = wake
        self.clock = runtime.clock
        s = self.settings
        self.policy = Policy(
            s.reping_after,
            s.escalate_after,
            s.agent_remind_after,
            s.agent_offer_after,
            s.user_warn_after,
            s.user_close_after,
        )
        self.handover_file = load_handover_file(s.handover_file)  # a bad file stops the start, with its lines
        self.desk: Desk = Desk(self)
        self._pending: dict[str, asyncio.Task[None]] = {}
        # A burst of messages queues here, in order, rather than for a pooled connection, whose wait
        # times out (SWITCHBOARD_DB_POOL_TIMEOUT) and would fail the message: at most a pool's worth of
        # messages are stored at once, and at most SWITCHBOARD_MAX_TURNS turns run at once.
        self._intake = asyncio.Semaphore(max(1, self.settings.db_pool_size // 2))
        self._turns = asyncio.Semaphore(self.settings.max_turns)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.turns_done = 0
        self.live: LiveReplies | None = None  # answers shown as they are written (set by the process)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take deadlines from the alarm clock; answer what was left unanswered when the process stopped."""
        await self.runtime.handle_timers("conversation", self.desk.tick)
        for conv_id in await self.store.awaiting_turn():
            self.schedule_turn(conv_id, delay=0.0)

    async def stop(self) -> None:
        for task in [*self._pending.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._pending.values(), *self._tasks, return_exceptions=True)
        if self.assistant is not None:
            await self.assistant.close()
        await self.locks.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what users write ------------------------------------------------------------------------

    async def user_said(self, msg: Inbound) -> Conversation | None:
        """Store a user's message and act on it; None when it was a repeat of a delivery already taken."""
        async with self._intake:
            return await self._user_said(msg)

    async def _user_said(self, msg: Inbound) -> Conversation | None:
        now = self.clock()
        conv, _ = await self.store.open_for(msg, now)
        try:
            async with self.engine.begin() as conn:
                await self.store.add_message(conn, conv.id, "user", msg.text, now, msg.who, msg.event_key)
                await self.store.touch(conn, conv.id, last_user_at=now, warned=False, updated_at=now)
                if conv.state in WITH_HUMANS:
                    await self.out.to_agents(conn, conv, relayed(msg.who.name, msg.text, "user"), now)
                # The message may bring a deadline forward (an agent now owes an answer).
                due = next_at(replace(conv, last_user_at=now, warned=False), self.policy)
                if due is not None:
                    await self.out.timer(conn, conv.id, due)
        except sa.exc.IntegrityError:
            return None  # the platform delivered this message before
        if due is not None:
            self.runtime.alarm.arm(due)
        self.wake()
        if conv.state not in AI_SPEAKS:
            return conv
        if self.rules(conv).keyword_in(msg.text):
            await self.hand_over(conv, "keyword", msg.who.ref, summary=f"The user wrote: {msg.text}")
        elif self.assistant is None:
            await self.hand_over(conv, "no_llm", "switchboard", summary=f"The user wrote: {msg.text}")
        else:
            self.schedule_turn(conv.id)
        return conv

    def rules(self, conv: Conversation) -> Rules:
        """The hand-over rules of ``conv``'s workflow and channel, over the environment's defaults."""
        return rules_for(self.settings, self.handover_file, conv, self._declared(conv.workflow))

    def _declared(self, name: str | None) -> WorkflowHandover | None:
        """The ``handover:`` of the workflow ``name`` as its file says now (read again only when changed)."""
        if not name:
            return None
        try:
            return self.catalog.workflow(name).spec.handover
        except (WorkflowNotFound, WorkflowInvalid, OSError) as exc:
            # Gone or broken since the assistant ran it: the file's and the environment's rules hold.
            log.debug("hand-over rules of workflow %s not read: %s", name, exc)
            return None

    def schedule_turn(self, conv_id: str, delay: float | None = None) -> None:
        """Run a turn after the quiet window; a message inside the window restarts it (debouncing)."""
        waiting = self._pending.pop(conv_id, None)
        if waiting is not None and not waiting.done():
            waiting.cancel()
        wait = self.settings.debounce if delay is None else delay
        task = asyncio.create_task(self._after(conv_id, wait))
        self._pending[conv_id] = task
        # Past the quiet window it leaves _pending, but stop() must still cancel and await it.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, conv_id: str, wait: float) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        if self._pending.get(conv_id) is asyncio.current_task():
            del self._pending[conv_id]  # from here on, a new message schedules a new turn
        try:
            async with self._turns:
                await self.turn(conv_id)
        except Exception:
            log.exception("conversation %s: the assistant's turn failed", conv_id)

    # -- the assistant's turn --------------------------------------------------------------------

    async def turn(self, conv_id: str) -> bool:
        """One assistant turn over the messages no turn has answered; False when there was nothing to do."""
        with log_context.bound(conversation_id=conv_id):
            return await self._turn(conv_id)

    async def _turn(self, conv_id: str) -> bool:
        async with self.locks.hold(conv_id):
            conv = await self.store.get(conv_id)
            if conv is None or conv.state not in AI_SPEAKS or self.assistant is None:
                return False
            log_context.bind(platform=conv.platform)  # undone with the conversation's id when the turn ends
            turn = conv.turns + 1
            if not await self._take(conv, turn):
                return False
            conv = replace(conv, state=State.AI_PROCESSING)
            stored = False
            try:
                stored = await self._answer(conv, turn)
            finally:
                if not stored:
                    await self.store.release_turn(conv_id, self.runtime.owner)
            return True

    async def _take(self, conv: Conversation, turn: int) -> bool:
        """Claim ``turn`` for this process and give it the unread messages, in one transaction.

        Another process that saw the same message finds the claim and tries again only when it lapses
        (by then the turn is answered, or its process died and the turn is taken again).
        """
        now = self.clock()
        s = self.settings
        until = now + s.llm_timeout * (s.llm_retries + 1) + s.lease_seconds
        owner = self.runtime.owner
        async with self.engine.begin() as conn:
            lapses = await self.store.claim_turn(
                conn, conv.id, conv.turns, owner, until, now, lambda other: is_dead(other, owner)
            )
            if lapses is not None:
                if lapses > now:
                    self.schedule_turn(conv.id, delay=lapses - now)
                return False
            taken = await self.store.take_unread(conn, conv.id, turn, conv.turns)
            if taken and conv.state != State.AI_PROCESSING:
                taken = await self.store.move(conn, conv, State.AI_PROCESSING, "assistant", now)
            if not taken:
                await self.store.release_turn_in(conn, conv.id, owner)
            return bool(taken)

    async def _answer(self, conv: Conversation, turn: int) -> bool:
        """Ask the assistant; store its reply or hand-over. True when one was stored, ending the claim."""
        assert self.assistant is not None
        conv_id = conv.id
        history = await self.store.messages(conv_id, after=conv.summarized_through)
        memory = await self.store.recall(conv_id, self.clock())
        chat = context.build(conv, history, memory, self.settings.llm_context_tokens)
        tools = ConversationTools(self, conv)
        preview = self.live.open(conv, turn) if self.live is not None else None
        began = time.monotonic()  # a measured duration for the cost figures, not a deadline
        try:
            if preview is not None:
                await preview.begin()
            result = await self.assistant.turn(chat, tools, preview.show if preview else None)
        except AssistantUnavailable as exc:
            log.warning("conversation %s: the assistant is unavailable: %s", conv_id, exc)
            await self._close_preview(conv, preview, cut=True)
            return await self.hand_over(
                conv,
                "llm_unavailable",
                "switchboard",
                turn=turn,
                preface="The assistant is not available right now.",
                summary=_last_user_words(history),
            )
        except BaseException:
            if preview is not None:
                await preview.cancel()
            raise
        spent = time.monotonic() - began
        conv = tools.conv  # a tool may have made it about a workflow: that workflow's rules apply below
        await self.store.add_usage(conv_id, result.usage.prompt_tokens, result.usage.completion_tokens, spent)
        outcome = result.outcome
        failures = conv.failures + 1 if result.failed else 0
        replying = isinstance(outcome, Finished) or (
            not isinstance(outcome, HandedOver) and failures < self.rules(conv).after_failures
        )
        replaces = None
        if preview is not None and replying:
            sent = await preview.finish()
            replaces = sent.ref if sent is not None else None
        elif not replying:
            await self._close_preview(conv, preview, cut=False)
        if isinstance(outcome, HandedOver):
            req = outcome.request
            stored = await self.hand_over(
                conv,
                req.reason,
                "assistant",
                turn=turn,
                summary=req.summary,
                skills=req.skills,
                priority=req.priority,
                tried=req.tried or ", ".join(result.tools_used),
                suggested=req.suggested_reply,
            )
        elif isinstance(outcome, Finished):
            text = outcome.text or outcome.request.resolution
            resolution = outcome.request.resolution
            stored = await self.reply(conv, turn, text, failures, history, resolution, replaces)
        elif failures >= self.rules(conv).after_failures:
            stored = await self.hand_over(
                conv,
                "repeated_failures",
                "switchboard",
                turn=turn,
                summary=_last_user_words(history),
                tried=", ".join(result.tools_used),
                preface=outcome.text or None,
            )
        else:
            text = outcome.text or "Sorry, I have no answer to that. Try rephrasing, or ask for a person."
            stored = await self.reply(conv, turn, text, failures, history, replaces=replaces)
        self.turns_done += 1
        if context.needs_summary(conv, history):
            self.spawn(self._summarize(conv_id))
        return stored

    async def reply(
        self,
        conv: Conversation,
        turn: int,
        text: str,
        failures: int,
        history: list[Message],
        finish: str | None = None,
        replaces: str | None = None,
    ) -> bool:
        """Store and send the assistant's reply if the conversation is still its own and the turn open;
        ``replaces`` is the live preview's message, which the reply is edited into."""
        now = self.clock()
        recent = [m.text.removesuffix(REPEATED) for m in history if m.role == "assistant"]
        repeat = text in recent[-RECENT_REPLIES:]
        values: dict[str, Any] = {
            "turns": turn,
            "failures": failures,
            "updated_at": now,
            "last_bot_at": now,
            **TURN_DONE,
        }
        async with self.engine.begin() as conn:
            speaking = [s.value for s in AI_SPEAKS]
            if not await self.store.assistant_replied(conn, conv.id, turn, speaking, values):
                await self.store.event(
                    conn, conv.id, now, "assistant", "reply_dropped", None, None, {"turn": turn}
                )
                log.info(
                    "conversation %s: turn %d's reply dropped (the conversation moved on)", conv.id, turn
                )
                if replaces is not None and self.live is not None:
                    await self.live.withdraw(conn, conv, replaces, WITHDRAWN, now)
                return False
            if repeat:
                # Never silence: the person asked again, so they get the answer, marked as the same one.
                text += REPEATED
                await self.store.event(
                    conn, conv.id, now, "assistant", "reply_repeated", None, None, {"turn": turn}
                )
            await self.store.add_message(
                conn, conv.id, "assistant", text, now, turn=turn, author_name="Assistant"
            )
            human = self.rules(conv).explicit_request
            card = notice(text, "success") if finish else assistant_reply(conv.id, text, human)
            await self.out.to_user(conn, conv, card, now, replaces)
            if finish is not None:
                await self.store.move(
                    conn,
                    replace(conv, state=State.AI_PROCESSING),
                    State.FINISHED,
                    "assistant",
                    now,
                    values={"resolution": finish},
                    detail={"resolution": finish},
                )
                await ask_for_rating(self, conn, conv, now)
        self.wake()
        return True

    async def _close_preview(self, conv: Conversation, preview: Preview | None, cut: bool) -> None:
        if preview is not None and self.live is not None:
            await self.live.close(conv, preview, self.clock(), cut)
        self.wake()

    # -- handing over ----------------------------------------------------------------------------

    async def hand_over(
        self,
        conv: Conversation,
        reason: str,
        actor: str,
        *,
        turn: int | None = None,
        summary: str | None = None,
        skills: list[str] | tuple[str, ...] = (),
        priority: str | int = "normal",
        tried: str | None = None,
        suggested: str | None = None,
        preface: str | None = None,
    ) -> bool:
        """Move the conversation to the queue: tell the user their place, post the card, arm the deadlines."""
        now = self.clock()
        others = [c for c in await self.store.pending() if c.id != conv.id]
        agents = await self.store.agents()
        said = [m.text for m in await self.store.messages(conv.id, limit=SO_FAR) if m.role == "user"]
        words = "\n".join([summary or "", *said])
        skills, priority = self.rules(conv).route(reason, words, skills, priority)
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {
                "reason": reason,
                "summary": summary,
                "skills": list(skills),
                "priority": priority_of(priority),
                "tried": tried or None,
                "suggested": suggested or None,
                "handovers": conversations.c.handovers + 1,
            }
            if turn is not None:
                values.update(turns=turn, **TURN_DONE)
            where = conversations.c.turns == turn - 1 if turn is not None else None
            if not await self.store.move(
                conn, conv, State.HANDOVER, actor, now, values, {"reason": reason}, where
            ):
                return False
            handed = await self.store.get(conv.id, conn)
            assert handed is not None
            queued = {
                "queued_at": now,
                "pings": 0,
                "escalated": False,
                "reminded": False,
                "agent_ref": None,
                "agent_name": None,
                "offered_to": None,
            }
            await self.store.move(conn, handed, State.PENDING_HUMAN, "switchboard", now, queued)
            waiting = replace(handed, state=State.PENDING_HUMAN, queued_at=now, pings=0, escalated=False)
            place = position([*others, waiting], conv.id)
            wait = describe_wait(estimated_wait(place, agents, None))
            text = f"I'm passing you to a person. You are number {place} in the queue; {wait}."
            if preface:
                text = f"{preface} {text}"
            await self.store.add_message(conn, conv.id, "system", text, now, author_name="Switchboard")
            await self.out.to_user(conn, conv, notice(text), now)
            has_card = await self.desk.draw(conn, waiting, now)
            if has_card:
                history = await self.store.messages(conv.id, limit=SO_FAR)
                so_far = context.transcript(waiting, history, hhmm)
                await self.out.to_agents(conn, waiting, notice(so_far, "neutral"), now)
            else:
                log.warning(
                    "conversation %s: no agents' channel on %s; set SWITCHBOARD_AGENTS_CHANNEL",
                    conv.id,
                    conv.platform,
                )
            due = next_at(waiting, self.policy)
            if due is not None:
                await self.out.timer(conn, conv.id, due)
        self.wake()
        if due is not None:
            self.runtime.alarm.arm(due)
        if self.settings.handover_mode == "auto":
            await self.desk.auto_assign(conv.id)
        return True

    async def ask_for_human(self, conv_id: str, actor: str) -> str:
        """The user asked for a person (a button, /human): hand over, whatever the assistant is doing."""
        conv = await self.store.get(conv_id)
        if conv is None:
            return "That conversation no longer exists."
        if conv.state in WITH_HUMANS:
            return "You are already in the queue for a person, or talking with one."
        if conv.state not in AI_SPEAKS:
            return "That conversation has ended; write again to start a new one."
        if not self.rules(conv).explicit_request:
            return (
                "Here the assistant hands a conversation to a person when it cannot help; "
                "tell it what you need."
            )
        history = await self.store.messages(conv.id, limit=SO_FAR)
        summary = conv.summary or _last_user_words(history)
        if not await self.hand_over(conv, "user_request", actor, summary=summary):
            return "The conversation changed just now; try again."
        return ""

    async def _summarize(self, conv_id: str) -> None:
        """Refresh the rolling summary in the background, never on the path of a reply."""
        conv = await self.store.get(conv_id)
        if conv is None or self.assistant is None:
            return
        history = await self.store.messages(conv_id)
        older = history[:-10]
        if not older:
            return
        text = context.transcript(conv, older, hhmm)
        if conv.memory_summary:
            text = f"Earlier summary: {conv.memory_summary}\n\n{text}"
        try:
            summary = await self.assistant.summarize(text)
        except AssistantUnavailable as exc:
            log.info("conversation %s: the summary was not refreshed: %s", conv_id, exc)
            return
        async with self.engine.begin() as conn:
            await self.store.touch(conn, conv_id, memory_summary=summary, summarized_through=older[-1].id)


def _last_user_words(history: list[Any]) -> str:
    said = [m.text for m in history if m.role == "user"][-3:]
    return "The user wrote: " + " / ".join(said) if said else ""


def make_conversations(runtime: Runtime, catalog: Catalog, wake: Callable[[], None]) -> Conversations:
    """The service as the settings configure it: the assistant if an LLM is set, Redis locks if Redis is."""
    from bot.conversations.approval_requests import watch_approvals
    from bot.conversations.locks import make_locks
    from bot.conversations.runs import watch_runs

    settings = runtime.settings
    llm = settings.llm()
    ttl = settings.llm_timeout * (settings.llm_retries + 1) * 2 + 30.0
    assistant = Assistant(llm, runtime.metrics) if llm else None
    service = Conversations(runtime, catalog, make_locks(settings.redis_url, ttl=ttl), assistant, wake)
    watch_runs(service)
    watch_approvals(service)
    return service
