"""Conversation commands and buttons: /human, /agent, /queue, /conversation, and the handover card's buttons.

Button ids are ``sb:conv:<conversation>:<choice>``; forms carry the conversation in their id
(``sb:form:conv:<conversation>.transfer`` / ``.back``) so a card from before a restart still works.
"""

from __future__ import annotations

import shlex

from bot.conversations.ratings import rate
from bot.conversations.routing import queue_order
from bot.conversations.service import Conversations
from bot.errors import BadInput, NotFound, NotPermitted
from bot.storage.conversations.rows import Inbound
from cards.conversation_card import RATINGS, AgentLine, queue_card
from cards.model import Form, FormField, action_id
from handlers.services import Services
from handlers.types import Click, Command, Reply, Say, ShowForm, Submission

AGENT_USAGE = "Usage: /agent on [skill ...] | /agent off | /agent status"


def _service(svc: Services) -> Conversations:
    if svc.conversations is None:
        raise BadInput("Conversations are not running in this process.")
    return svc.conversations


def form_id(conversation_id: str, what: str) -> str:
    return action_id("form", "conv", f"{conversation_id}.{what}")


async def conversation_button(click: Click, target: str, choice: str, svc: Services) -> Reply:
    """The buttons on assistant replies ("Talk to a human") and on handover cards."""
    conv = _service(svc)
    desk = conv.desk
    if choice == "human":
        found = await desk.get(target)
        if found.user.ref != click.who.ref:
            raise NotPermitted("This button is for the person the assistant is talking with.")
        told = await conv.ask_for_human(target, click.who.ref)
        return Say(told) if told else None
    if choice in RATINGS:
        return Say(await rate(conv, target, click.who, RATINGS[choice]))
    if choice == "claim":
        return Say(await desk.claim(target, click.who))
    if choice == "resolve":
        return Say(await desk.resolve(target, click.who))
    if choice == "release":
        return Say(await desk.release(target, click.who))
    if choice == "transfer":
        desk.check_agent(click.who)
        await desk.get(target)
        return ShowForm(
            Form(
                form_id=form_id(target, "transfer"),
                title="Transfer",
                fields=(
                    FormField(
                        "to", "Skill or agent", required=True, help="A skill (billing) or an agent (@bob)"
                    ),
                ),
                submit="Transfer",
            )
        )
    if choice == "back":
        found = await desk.get(target)
        desk.check_holder(found, click.who)
        return ShowForm(
            Form(
                form_id=form_id(target, "back"),
                title="Back to AI",
                fields=(
                    FormField(
                        "note", "Note for the assistant", "multiline", help="What it should know or do next"
                    ),
                ),
                submit="Hand back",
            )
        )
    raise BadInput("Switchboard does not know this button.")


async def conversation_form(sub: Submission, target: str, svc: Services) -> Reply:
    """The Transfer and Back to AI dialogs."""
    desk = _service(svc).desk
    conv_id, _, what = target.partition(".")
    if what == "transfer":
        return Say(await desk.transfer(conv_id, sub.who, sub.values.get("to", "")))
    if what == "back":
        return Say(await desk.back_to_ai(conv_id, sub.who, (sub.values.get("note") or "").strip()))
    raise BadInput("Switchboard does not know this form.")


async def human_command(cmd: Command, svc: Services) -> Reply:
    """``/human [what you need]``: go straight to a person, with or without an assistant configured."""
    conv = _service(svc)
    text = cmd.text.strip() or "The user asked for a person with /human."
    thread = cmd.where.thread
    msg = Inbound(cmd.who, cmd.where.platform, cmd.where.channel, text, thread, direct=False)
    found, _ = await conv.store.open_for(msg, conv.clock())
    told = await conv.ask_for_human(found.id, cmd.who.ref)
    return Say(told or "A person will be with you here shortly.")


async def agent_command(cmd: Command, svc: Services) -> Reply:
    """``/agent on [skills]``, ``/agent off``, ``/agent status``."""
    conv = _service(svc)
    args = shlex.split(cmd.text) if cmd.text.strip() else ["status"]
    sub, rest = args[0].lower(), [a.strip(",") for a in args[1:] if a.strip(",")]
    now = conv.clock()
    if sub in ("on", "off"):
        conv.desk.check_agent(cmd.who)
        agent = await conv.store.set_agent(
            cmd.who, now, available=sub == "on", skills=rest or None, capacity=svc.settings.agent_capacity
        )
        skills = ", ".join(agent.skills) or "none"
        if sub == "on":
            for queued in queue_order(await conv.store.pending()):
                if svc.settings.handover_mode == "auto":
                    await conv.desk.auto_assign(queued.id)
        state = "on duty" if agent.available else "off duty"
        return Say(f"You are {state}. Skills: {skills}. Holding {agent.load} of {agent.capacity}.")
    if sub == "status":
        found = await conv.store.agent(cmd.who.ref)
        if found is None:
            return Say("You are not an agent yet. /agent on [skills] puts you on duty.")
        agent = found
        held = await conv.store.active(cmd.who.ref)
        lines = "".join(f"\n• {c.user.name} ({c.id})" for c in held)
        state = "on duty" if agent.available else "off duty"
        return Say(
            f"You are {state}; skills: {', '.join(agent.skills) or 'none'}; "
            f"holding {agent.load} of {agent.capacity}.{lines}"
        )
    raise BadInput(AGENT_USAGE)


async def queue_command(cmd: Command, svc: Services) -> Reply:
    """``/queue``: who is waiting, in order, and each agent's load."""
    from bot.conversations.desk import view_of

    conv = _service(svc)
    waiting = [view_of(c) for c in queue_order(await conv.store.pending())]
    agents = [AgentLine(a.name, a.available, a.load, a.capacity, a.skills) for a in await conv.store.agents()]
    return Say(card=queue_card(waiting, agents, conv.clock()))


async def conversation_command(cmd: Command, svc: Services) -> Reply:
    """``/conversation transcript ID``."""
    from bot.conversations.transcripts import transcript_of

    conv = _service(svc)
    args = cmd.text.split()
    if len(args) != 2 or args[0] != "transcript":
        raise BadInput("Usage: /conversation transcript ID")
    found = await conv.store.find(args[1])
    if found is None:
        raise NotFound(f"There is no conversation {args[1]}.")
    if found.user.ref != cmd.who.ref and found.agent_ref != cmd.who.ref and not cmd.who.admin:
        conv.desk.check_agent(cmd.who)
    return Say(await transcript_of(conv, found))
