"""The assistant's tools, bound to one conversation and acting as its user.

Running a workflow goes through the same checks as ``/workflow run``: the workflow's ``permissions``
for this user in this place, typed inputs, and any approval gates the workflow has. A tool refuses to
act once the conversation is no longer the assistant's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.conversations.approval_requests import request_approval
from bot.conversations.tools import HandoverToHuman, Remember, RequestApproval, Rewind, RunStatus, RunWorkflow
from bot.errors import SwitchboardError
from bot.identity import Place, allowed
from bot.runtime.catalog import check_may_run
from bot.runtime.rewinds import rewind_problem
from bot.runtime.run_views import view_from_store
from bot.storage.conversations.states import AI_SPEAKS
from engine import state as run_state
from engine.inputs import InputError, resolve_inputs

if TYPE_CHECKING:
    from bot.conversations.service import Conversations
    from bot.storage.conversations.rows import Conversation


class ConversationTools:
    """``bot.conversations.assistant.Toolbox`` for one conversation."""

    def __init__(self, service: Conversations, conv: Conversation) -> None:
        self.service = service
        self.conv = conv
        self.who = conv.user
        self.where = Place(conv.platform, conv.channel, conv.thread)

    async def call(self, name: str, args: Any) -> tuple[str, bool]:
        current = await self.service.store.get(self.conv.id)
        if current is None or current.state not in AI_SPEAKS:
            return "Error: a person has taken over this conversation; stop.", False
        try:
            if name == "list_workflows":
                return self._list(), True
            if isinstance(args, RunWorkflow):
                return await self._run(args), True
            if isinstance(args, RunStatus):
                return await self._status(args), True
            if isinstance(args, Rewind):
                return await self._rewind(args), True
            if isinstance(args, RequestApproval):
                return await request_approval(self.service, self.conv, args), True
            if isinstance(args, Remember):
                ttl = self.service.settings.memory_ttl
                await self.service.store.remember(
                    self.conv.id, args.key, args.value, self.service.clock(), ttl
                )
                return f"Remembered {args.key}.", True
        except SwitchboardError as exc:
            return f"Error: {exc}", False
        return f"Error: the tool {name} is not available here.", False

    def refuse_handover(self, request: HandoverToHuman) -> str | None:
        rules = self.service.rules(self.conv)
        if request.reason == "user_request" and rules.explicit_request:
            return None
        limit, sure = rules.confidence_below, request.confidence
        if limit is None or sure is None or sure < limit:
            return None
        return (
            f"Not handed over: here a person takes over only when your confidence is below {limit:g} "
            f"(you reported {sure:g}). Keep helping the user, or ask them for what you need."
        )

    def _list(self) -> str:
        runnable = self.service.catalog.workflows()
        mine = [w for w in runnable if allowed(w.spec.permissions.run, self.who, self.where)]
        if not mine:
            return "This user may not run any workflow here."
        lines = []
        for w in mine:
            inputs = ", ".join(
                f"{n} ({i.type}{', required' if i.required else ''}"
                + (f", one of {'/'.join(map(str, i.enum))}" if i.enum else "")
                + ")"
                for n, i in w.spec.inputs.items()
            )
            lines.append(f"- {w.spec.name}: {w.spec.description or ''} Inputs: {inputs or 'none'}")
        return "\n".join(lines)

    async def _run(self, args: RunWorkflow) -> str:
        loaded = self.service.catalog.find(args.name)
        check_may_run(loaded, self.who, self.where)
        try:
            resolve_inputs(loaded.spec, args.inputs)
        except InputError as exc:
            problems = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
            return f"Error: not started; inputs of {loaded.spec.name}: {problems}"
        meta = {"origin": self.where.to_dict(), "who": self.who.to_dict(), "conversation": self.conv.id}
        started = await self.service.runtime.submit(loaded, args.inputs, started_by=self.who.ref, meta=meta)
        await self._about(loaded.spec.name)
        return (
            f"Started {loaded.spec.name} as run {started.run_id}. Its status card is posted in the chat; "
            "approval steps wait for their approvers."
        )

    async def _about(self, workflow: str) -> None:
        """The conversation is about ``workflow`` now: its hand-over rules apply from here on."""
        if self.conv.workflow == workflow:
            return
        async with self.service.engine.begin() as conn:
            await self.service.store.touch(conn, self.conv.id, workflow=workflow)
        self.conv = replace(self.conv, workflow=workflow)

    async def _status(self, args: RunStatus) -> str:
        store = self.service.runtime.store
        row = await store.run_row(args.run_id)
        # The view's started_by is the name people read ("@alice"); who started it is the row's ref.
        if row is not None and row.started_by != self.who.ref and not self.who.admin:
            return f"Error: run {args.run_id} was started by someone else."
        view = None if row is None else await view_from_store(store, row.id)
        if view is None:
            return f"Error: there is no run {args.run_id}."
        await self._about(view.workflow)
        steps = ", ".join(f"{s.key}: {s.status}" for s in view.steps)
        tail = f" Error: {view.error}." if view.error else ""
        waiting = f" Waiting for: {view.waiting_for}." if view.waiting_for else ""
        return f"Run {view.run_id} of {view.workflow} is {view.status}.{waiting}{tail} Steps: {steps}"

    async def _rewind(self, args: Rewind) -> str:
        runtime = self.service.runtime
        row = await runtime.store.run_row(args.run_id)
        if row is None:
            return f"Error: there is no run {args.run_id}."
        self.service.catalog.check_may_steer(
            row.workflow, row.started_by, "rollback", self.who, self.where, doing="rewind"
        )
        if not run_state.RunStatus(row.status).finished:
            return f"Error: run {row.id} is {row.status}; only a finished run can be rewound."
        problem = await rewind_problem(runtime, row, args.to)
        if problem is not None:
            return f"Error: run {row.id} cannot be rewound: {problem}."
        await runtime.rewind(row.id, by=self.who.ref, to=args.to)
        await self._about(row.workflow)
        return (
            f"Rewinding run {row.id} to {args.to}: the steps after it are undone, newest first, then the run "
            "goes on from there. Its status card shows the progress."
        )
