"""``/api/v1/conversations``: a user's messages on the ``api`` platform (a website's chat widget) and the
replies, asking for a person, resolving, the transcript and the queue, under the desk's own rules."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

from bot.api.chat_sink import PLATFORM
from bot.api.context import ApiContext
from bot.api.models import Body
from bot.api.routing import Call
from bot.api.runs import idempotency_key
from bot.conversations.ratings import rate
from bot.conversations.service import Conversations
from bot.conversations.transcripts import stats
from bot.errors import Conflict, NotFound, NotPermitted, UpstreamUnavailable
from bot.identity import Identity
from bot.runtime.costs import Prices
from bot.storage.conversations.rows import Conversation, Inbound

Role = Literal["user", "assistant", "agent", "note", "system", "tool"]


class UserMessage(Body):
    text: str = Field(min_length=1, max_length=4000)
    session: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="One open conversation per caller and session (a widget's visitor id, say)",
    )


class MessageInfo(BaseModel):
    id: int
    at: float
    role: str
    author: str | None
    text: str


class ConversationInfo(BaseModel):
    id: str
    state: str
    user: str
    agent: str | None
    messages: list[MessageInfo] = Field(description="The transcript (notes only for agents), oldest first")
    notice: str | None = Field(default=None, description="What the user is told, e.g. their queue position")


class ConversationSummary(BaseModel):
    id: str
    state: str
    user: str
    platform: str
    priority: int
    reason: str | None


class Queue(BaseModel):
    conversations: list[ConversationSummary]


class Rating(Body):
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (great)")


class AgentLoad(BaseModel):
    holding: int
    handled: int


class ConversationStats(BaseModel):
    """The figures of `switchboard conversations stats`; null where there is nothing to go by."""

    conversations: int
    closed: int
    resolved_by_ai: float | None
    handover_rate: float | None
    wait_p50_s: float | None
    wait_p90_s: float | None
    handle_p50_s: float | None
    first_response_p50_s: float | None
    satisfaction_avg: float | None = Field(description="The average 1-5 rating")
    ratings: int
    ai_time_s: float = Field(description="Seconds spent in the assistant's turns")
    ai_time_per_conversation_s: float | None
    human_time_s: float = Field(description="Agents' handle time, claimed to resolved")
    human_time_per_conversation_s: float | None
    llm_tokens: int
    currency: str
    ai_cost: float | None = Field(description="Tokens times the price table; null without prices")
    ai_cost_per_conversation: float | None
    human_cost: float | None = Field(description="Handle time times SWITCHBOARD_AGENT_HOURLY_COST")
    human_cost_per_conversation: float | None
    runs: int = Field(description="Workflow runs created in the period")
    runs_with_llm: int = Field(description="Those whose llm steps made calls")
    run_llm_tokens: int = Field(description="The tokens in the stored usage of those runs' llm steps")
    run_ai_cost: float | None
    ai_cost_per_run: float | None = Field(description="run_ai_cost over runs_with_llm; null without prices")
    agents: dict[str, AgentLoad]


class Said(BaseModel):
    message: str


class ConversationEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def _service(self) -> Conversations:
        service = self.ctx.services.conversations
        if service is None:
            raise UpstreamUnavailable("Conversations are not running in this process.")
        return service

    async def post(self, call: Call) -> ConversationInfo:
        """A user's message: stored, then answered by the assistant or queued for a person."""
        body: UserMessage = call.body
        who = call.who.who
        service = self._service()
        key = idempotency_key(call)
        if key is not None:  # message keys are unique across every platform: make the caller's their own
            key = "api:" + hashlib.sha256(f"{who.ref}\n{key}".encode()).hexdigest()
        channel = f"{who.ref}/{body.session}"
        inbound = Inbound(who, PLATFORM, channel, body.text, event_key=key, direct=True)
        conv = await service.user_said(inbound)
        if conv is None:  # the same Idempotency-Key again: the message was taken the first time
            conv = await service.store.open_at(inbound.place_key)
            if conv is None:
                raise NotFound("That message was taken before, and its conversation has ended since.")
        await self.ctx.record(call.who, {"conversation": conv.id, "said": len(body.text)}, "ok", None)
        return await self._info(conv.id, who)

    async def get(self, call: Call) -> ConversationInfo:
        return await self._info(call.path["conversation_id"], call.who.who)

    async def handover(self, call: Call) -> ConversationInfo:
        """The user asks for a person, as the Talk to a human button does."""
        who = call.who.who
        conv = await self._mine(call.path["conversation_id"], who, user_only=True)
        refused = await self._service().ask_for_human(conv.id, who.ref)
        await self.ctx.record(call.who, {"handover": conv.id}, refused or "ok", None)
        if refused:
            raise Conflict(refused)
        return await self._info(conv.id, who)

    async def resolve(self, call: Call) -> Said:
        """An agent (the one holding it, or any agent for one in the queue) closes the conversation."""
        who = call.who.who
        message = await self._service().desk.resolve(call.path["conversation_id"], who)
        await self.ctx.record(call.who, {"resolve": call.path["conversation_id"]}, "ok", None)
        return Said(message=message)

    async def rate(self, call: Call) -> Said:
        """The user rates their resolved conversation, as the 1-5 buttons do (once; theirs only)."""
        body: Rating = call.body
        who = call.who.who
        message = await rate(self._service(), call.path["conversation_id"], who, body.rating)
        await self.ctx.record(call.who, {"rate": call.path["conversation_id"]}, "ok", None)
        return Said(message=message)

    async def stats(self, call: Call) -> ConversationStats:
        """The analytics, for agents."""
        service = self._service()
        self._check_agent(call.who.who)
        figures = await stats(service.engine, prices=Prices.from_settings(service.settings))
        return ConversationStats.model_validate(figures.report())

    async def queue(self, call: Call) -> Queue:
        """The conversations waiting for a person, for agents."""
        service = self._service()
        self._check_agent(call.who.who)
        waiting = await service.store.pending()
        return Queue(conversations=[_summary(c) for c in waiting])

    async def _mine(self, conv_id: str, who: Identity, user_only: bool = False) -> Conversation:
        service = self._service()
        conv = await service.store.find(conv_id)
        if conv is None:
            raise NotFound(f"There is no conversation {conv_id}.")
        if conv.user.ref == who.ref or who.admin:
            return conv
        if user_only:
            raise NotPermitted("Only the person in this conversation can ask for a person in it.")
        self._check_agent(who)  # agents read every conversation, as in their channel
        return conv

    def _check_agent(self, who: Identity) -> None:
        """The desk's rule, except that with no agents named only admins read others' conversations here:
        in chat, the agents' channel decides who sees them; over the API nothing else would."""
        if not self.ctx.services.settings.agent_groups and not who.admin:
            raise NotPermitted(
                "Only agents may do that, and no agents are named: set SWITCHBOARD_AGENT_GROUPS "
                "(e.g. group:support), or use an admin's token."
            )
        self._service().desk.check_agent(who)

    async def _info(self, conv_id: str, who: Identity) -> ConversationInfo:
        conv = await self._mine(conv_id, who)
        service = self._service()
        agent = conv.user.ref != who.ref
        messages = [
            m for m in await service.store.messages(conv.id) if agent or m.role not in ("note", "tool")
        ]
        return ConversationInfo(
            id=conv.id,
            state=str(conv.state),
            user=conv.user.ref,
            agent=conv.agent_ref,
            messages=[
                MessageInfo(id=m.id, at=m.at, role=m.role, author=m.author_name, text=m.text)
                for m in messages
            ],
        )


def _summary(conv: Conversation) -> ConversationSummary:
    return ConversationSummary(
        id=conv.id,
        state=str(conv.state),
        user=conv.user.ref,
        platform=conv.platform,
        priority=conv.priority,
        reason=conv.reason,
    )
