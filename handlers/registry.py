"""Every command, button and form Switchboard answers, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers.approvals import approval_button, approval_form, approvals_command
from handlers.completions import workflow_names
from handlers.conversations import (
    agent_command,
    conversation_button,
    conversation_command,
    conversation_form,
    human_command,
    queue_command,
)
from handlers.run_actions import run_button
from handlers.run_form import submit_run_form
from handlers.runners import runners_command
from handlers.services import Services
from handlers.types import Autocomplete, Click, Command, Reply, Submission
from handlers.workflow import workflow_command

CommandHandler = Callable[[Command, Services], Awaitable[Reply]]
ClickHandler = Callable[[Click, str, str, Services], Awaitable[Reply]]  # (click, target, choice)
FormHandler = Callable[[Submission, str, Services], Awaitable[Reply]]  # (submission, form target)
CompletionSource = Callable[[Autocomplete, Services], Awaitable[list[str]]]

# /name -> handler
COMMANDS: dict[str, CommandHandler] = {
    "workflow": workflow_command,
    "approvals": approvals_command,
    "human": human_command,
    "agent": agent_command,
    "queue": queue_command,
    "conversation": conversation_command,
    "runners": runners_command,
}

# button ids sb:{kind}:{target}:{choice} -> handler, by kind
ACTIONS: dict[str, ClickHandler] = {
    "run": run_button,
    "approval": approval_button,
    "conv": conversation_button,
}

# form ids sb:form:{kind}:{target} -> handler, by kind
FORMS: dict[str, FormHandler] = {
    "run": submit_run_form,
    "approval": approval_form,
    "conv": conversation_form,
}

# (command, option) -> suggestions while typing
COMPLETIONS: dict[tuple[str, str], CompletionSource] = {
    ("workflow", "name"): workflow_names,
}
