"""Every step kind that acts on the world, mapped to the function that performs one attempt of it.

The runtime looks a step's kind up here; kinds that only change the run's state (notify, wait,
approval, workflow) are handled by the runtime itself and are not listed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engine.activities import action, command, http, llm
from engine.activities.base import ActivityContext, StepCall

Activity = Callable[[StepCall, ActivityContext], Awaitable[dict[str, Any]]]

ACTIVITIES: dict[str, Activity] = {
    "run": command.execute,
    "http": http.execute,
    "action": action.execute,
    "llm": llm.execute,
}
