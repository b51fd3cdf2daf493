"""Every step kind that acts on the world, mapped to the function that performs one attempt of it.

The runtime looks a step's kind up here; kinds that only change the run's state (notify, wait,
approval, workflow) are handled by the runtime itself and are not listed. Each module is imported on
first use: aiohttp and openai take most of a second to import, and a resume after a crash should not
wait for libraries its steps never use.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from engine.activities.base import ActivityContext, StepCall

Activity = Callable[[StepCall, ActivityContext], Awaitable[dict[str, Any]]]

MODULES = {"run": "command", "http": "http", "action": "action", "llm": "llm"}
_loaded: dict[str, Activity] = {}


def activity(kind: str) -> Activity:
    """The ``execute`` function for a step kind (``run``, ``http``, ``action``, ``llm``)."""
    found = _loaded.get(kind)
    if found is None:
        module = importlib.import_module(f"engine.activities.{MODULES[kind]}")
        found = _loaded[kind] = module.execute
    return found
