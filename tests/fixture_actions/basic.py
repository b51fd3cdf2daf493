"""Sample actions covering each shape an action may take: sync, async, renamed, failing, unmarked."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

from engine.actions import ActionContext, action


@action
def greet(ctx: ActionContext) -> dict[str, Any]:
    """A sync action returning outputs built from its context."""
    return {
        "greeting": f"hello {ctx.params['name']}",
        "inputs": ctx.inputs,
        "run_id": ctx.run_id,
        "step": ctx.step_key,
        "attempt": ctx.attempt,
        "key": ctx.idempotency_key,
        "in_main_thread": threading.current_thread() is threading.main_thread(),
    }


@action
async def double(ctx: ActionContext) -> dict[str, Any]:
    """An async action."""
    await asyncio.sleep(0)
    return {"doubled": ctx.params["n"] * 2}


@action(name="ship")
def deploy_service(ctx: ActionContext) -> dict[str, Any]:
    """An action also callable by the name it was registered under."""
    return {"shipped": ctx.params.get("service")}


@action
def fan_item(ctx: ActionContext) -> dict[str, Any]:
    """Reports the fan-out item it was given."""
    return {"item": ctx.item, "index": ctx.index}


@action
def nothing(ctx: ActionContext) -> None:
    """Returns no outputs."""


@action
def a_list(ctx: ActionContext) -> list[int]:
    """Returns a bare JSON value."""
    return [1, 2, 3]


@action
def a_tuple_map(ctx: ActionContext) -> dict[str, Any]:
    """Returns JSON-able values that are not JSON types (a tuple)."""
    return {"pair": (1, 2)}


@action
def a_set(ctx: ActionContext) -> set[int]:
    """Returns something JSON cannot hold."""
    return {1, 2}


@action
def boom(ctx: ActionContext) -> None:
    """Raises, like a failing action would."""
    raise RuntimeError(f"disk full on {ctx.params.get('host', 'db1')}")


@action
def bye(ctx: ActionContext) -> None:
    """Calls sys.exit, which must fail the step rather than stop the bot."""
    sys.exit(3)


@action
def blocking(ctx: ActionContext) -> dict[str, Any]:
    """Blocks its thread; the event loop must keep running meanwhile."""
    time.sleep(ctx.params.get("seconds", 0.3))
    return {"slept": True}


def undecorated(ctx: ActionContext) -> dict[str, Any]:
    """A plain function: workflows must not be able to call it."""
    return {"called": True}
