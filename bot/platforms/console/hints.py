"""Hints while typing a slash command in the console's message box.

As the text grows, the hints follow it: the commands, then ``/workflow``'s subcommands, then the workflow
names this user may run (``Router.autocomplete``, as Discord's autocomplete uses), then that workflow's
inputs not typed yet. Each hint is the full text the box takes when it is picked.
"""

from __future__ import annotations

import shlex
from typing import Any

from bot.conversations.desk import NOTE_PREFIX
from bot.identity import Identity, Place, allowed
from engine.loader import LoadedWorkflow, WorkflowInvalid, WorkflowNotFound
from handlers.registry import COMMANDS
from handlers.router import Router
from handlers.types import Autocomplete
from handlers.workflow import SUBCOMMANDS

MAX_HINTS = 8
SUBCOMMAND_HELP = {
    "run": "Start a workflow: run NAME key=value …",
    "list": "The workflows you may run",
    "help": "Usage, or a workflow's inputs: help [NAME]",
    "status": "A run's card, or your recent runs: status [RUN]",
    "cancel": "Stop a run: cancel RUN",
    "rewind": "Undo what came after a checkpoint, then go on: rewind RUN CHECKPOINT",
    "rerun": "A new run reusing the steps before one: rerun RUN STEP",
}
COMMAND_HELP = {"workflow": "Run and watch workflows"}
TAKES_NAME = ("run", "help")


def _hint(value: str, label: str, detail: str = "") -> dict[str, str]:
    return {"value": value, "label": label, "detail": detail}


async def hints(router: Router, who: Identity, where: Place, text: str) -> list[dict[str, Any]]:
    """What the box may become next, best first (at most MAX_HINTS)."""
    if not text.startswith("/") or text.startswith(NOTE_PREFIX) or "\n" in text:
        return []  # a "// note" is a message, not a command
    command, space, rest = text[1:].partition(" ")
    if not space:
        return [
            _hint(f"/{name} ", f"/{name}", COMMAND_HELP.get(name, ""))
            for name in sorted(COMMANDS)
            if name.startswith(command.lower())
        ][:MAX_HINTS]
    if command.lower() != "workflow":
        return []
    sub, space, rest = rest.lstrip().partition(" ")
    if not space:
        return [
            _hint(f"/workflow {name} ", name, SUBCOMMAND_HELP.get(name, ""))
            for name in SUBCOMMANDS
            if name.startswith(sub.lower())
        ]
    if sub.lower() not in TAKES_NAME:
        return []
    name, space, rest = rest.lstrip().partition(" ")
    if not space:
        return await _names(router, who, where, sub.lower(), name)
    return _inputs(router, f"/workflow {sub} {name} ", name, rest) if sub.lower() == "run" else []


async def _names(router: Router, who: Identity, where: Place, sub: str, partial: str) -> list[dict[str, Any]]:
    names = await router.autocomplete(Autocomplete(who, where, "workflow", "name", partial))
    described = {w.spec.name: w.spec.description or "" for w in router.services.workflows()}
    typed = partial.lower()
    return [
        _hint(f"/workflow {sub} {name} ", name, described.get(name, ""))
        for name in names
        if typed in name.lower()
    ][:MAX_HINTS]


def _inputs(router: Router, head: str, workflow: str, rest: str) -> list[dict[str, Any]]:
    """The inputs still to give: ``name=`` for free text, ``name=value`` for each choice of an enum."""
    try:
        spec = router.services.workflow(workflow).spec
        words = shlex.split(rest)
    except (WorkflowNotFound, WorkflowInvalid, ValueError):
        return []
    given = {w.partition("=")[0] for w in words if "=" in w}
    typing = "" if rest.endswith(" ") or not rest else words[-1] if words else ""
    done = " ".join(words if typing == "" else words[:-1])
    base = head + (done + " " if done else "")
    out = []
    for name, inp in spec.inputs.items():
        if name in given and not typing.startswith(f"{name}="):
            continue
        kind = (
            "required"
            if inp.required
            else f"default {inp.default}"
            if inp.default is not None
            else "optional"
        )
        what = "choice" if inp.enum else inp.type
        detail = f"{what}, {kind}" + (f" — {inp.description}" if inp.description else "")
        choices = [f"{name}={v}" for v in inp.enum] if inp.enum else [f"{name}="]
        for choice in choices:
            if choice.startswith(typing) or (typing and typing in choice):
                spacer = " " if inp.enum else ""
                out.append(_hint(base + choice + spacer, choice, detail))
    return out[:MAX_HINTS]


def _finishable(loaded: LoadedWorkflow) -> bool:
    """Whether a run can end without anyone else: no approval step and no sub-workflow (which may ask)."""
    return not any(s.approval is not None or s.kind == "workflow" for s in loaded.spec.steps.values())


def first_command(router: Router, who: Identity, where: Place) -> str | None:
    """The ``/workflow run`` an empty channel suggests: a workflow ``who`` may run and see through to its
    end alone (no approval step), with its required inputs to fill in; None when there is none."""
    mine = [w for w in router.services.workflows() if allowed(w.spec.permissions.run, who, where)]
    if not mine:
        return None

    def required(w: LoadedWorkflow) -> list[str]:
        return [n for n, i in w.spec.inputs.items() if i.required and i.default is None]

    best = min(mine, key=lambda w: (not _finishable(w), len(required(w)), w.spec.name))
    if not _finishable(best):
        return None
    return " ".join(["/workflow run", best.spec.name, *(f"{n}=" for n in required(best))])
