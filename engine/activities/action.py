"""The ``action`` step kind: call a Python function marked with ``@action`` by its ``module:function`` ref.

Only marked functions can be called, so a workflow file cannot name ``os:system``. ``resolve_action``
is public so the validator and the CLI can check a ref before a run starts.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import inspect
import json
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.actions import ActionContext, action_name, is_action
from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.spec import ACTION_REF

ActionFn = Callable[[ActionContext], Any]

_TRACEBACK_TAIL = 4000  # characters of traceback kept in a failed step's result
_cache: dict[tuple[str, str], ActionFn] = {}


class ActionRefError(ValueError):
    """A ref that does not name a Switchboard action; ``str()`` is the message for the user."""


def resolve_action(ref: str, workflows_dir: Path | str) -> ActionFn:
    """Return the ``@action`` function that ``module:function`` names, or raise ActionRefError."""
    cached = _cache.get((ref, str(workflows_dir)))
    if cached is not None:
        return cached
    root = str(Path(workflows_dir).resolve())
    cached = _cache.get((ref, root))
    if cached is not None:
        _cache[(ref, str(workflows_dir))] = cached
        return cached
    if not ACTION_REF.match(ref):
        raise ActionRefError(f"'{ref}' is not a 'module:function' reference, e.g. examples.actions:lint")
    module_name, attr = ref.split(":")
    # In front of sys.path, so a workflow's own module wins over an installed package of the same name.
    if root not in sys.path:
        sys.path.insert(0, root)
    module = _import(module_name, root)
    target = getattr(module, attr, None)
    if target is None:
        # ``@action(name="deploy")`` lets a function be called by that name too.
        target = _actions_of(module).get(attr)
    if target is None:
        raise ActionRefError(f"module '{module_name}' has no action '{attr}'{_hint(attr, module)}")
    if not is_action(target) or not callable(target):
        raise ActionRefError(
            f"{ref} is not a Switchboard action; only functions marked with @switchboard action decorator "
            "(engine.actions.action) can be called from a workflow"
        )
    _cache[(ref, root)] = target
    return target


async def execute(call: StepCall, ctx: ActivityContext) -> dict[str, Any]:
    """Run the action a step names and return its outputs."""
    ref = str(call.params["ref"])
    try:
        func = resolve_action(ref, ctx.workflows_dir)
    except ActionRefError as exc:
        raise StepFailure("action", str(exc)) from None
    context = ActionContext(
        inputs=dict(call.inputs),
        params=dict(call.params.get("with") or {}),
        run_id=call.run_id,
        step_id=call.step_id,
        step_key=call.step_key,
        attempt=call.attempt,
        idempotency_key=call.idempotency_key,
        item=call.params.get("item"),
        index=call.params.get("index"),
    )
    try:
        if inspect.iscoroutinefunction(func):
            value = await func(context)
        else:
            # A worker thread keeps a slow sync action off the loop. Python cannot stop a thread, so on
            # cancel the step ends at once but the thread runs until the function returns.
            value = await asyncio.to_thread(func, context)
            if inspect.isawaitable(value):
                value = await value
    except StepFailure:
        raise  # an action may choose its own failure kind, e.g. "http" so a retry policy applies
    except (Exception, SystemExit) as exc:  # sys.exit() in an action must fail the step, not the bot
        raise StepFailure("action", f"{type(exc).__name__}: {exc}", {"traceback": _traceback(exc)}) from exc
    return _outputs(ref, value)


def _import(module_name: str, root: str) -> ModuleType:
    for retry in (False, True):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise ActionRefError(f"importing '{module_name}' failed: {exc}") from exc
            if retry:
                raise ActionRefError(
                    f"no module '{module_name}' in {root} or among installed packages "
                    f"(looked for {Path(root, *module_name.split('.'))}.py)"
                ) from exc
            # The file may have been created after the import system cached the directory listing.
            importlib.invalidate_caches()
        except Exception as exc:
            raise ActionRefError(f"importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")


def _actions_of(module: ModuleType) -> dict[str, ActionFn]:
    found: dict[str, ActionFn] = {}
    for attr, value in vars(module).items():
        name = action_name(value)
        if name is not None and callable(value):
            found[attr] = value
            found.setdefault(name, value)
    return found


def _hint(attr: str, module: ModuleType) -> str:
    names = sorted(_actions_of(module))
    close = difflib.get_close_matches(attr, names, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    if names:
        return f"; its actions are: {', '.join(names)}"
    return "; it has no functions marked with @action"


def _outputs(ref: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    outputs = dict(value) if isinstance(value, Mapping) else {"value": value}
    try:
        # A round trip gives exactly what the run history will store (tuples become lists, and so on).
        loaded: dict[str, Any] = json.loads(json.dumps(outputs, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StepFailure(
            "action", f"{ref} returned something that is not JSON (dicts, lists, text, numbers): {exc}"
        ) from None
    return loaded


def _traceback(exc: BaseException) -> str:
    # Keep the author's frames: drop this module's and the thread pool's plumbing.
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename != __file__ and "/concurrent/futures/" not in frame.filename
    ]
    lines = [
        "Traceback (most recent call last):\n",
        *traceback.format_list(frames),
        *traceback.format_exception_only(type(exc), exc),
    ]
    text = "".join(lines)
    return text[-_TRACEBACK_TAIL:]
