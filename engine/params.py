"""Render a step's kind-specific parameters from its spec and the expression context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from engine.expressions import render
from engine.spec import CompensateSpec, Step


def render_params(spec: Step | CompensateSpec, context: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters an activity receives for ``spec``, every expression evaluated."""
    kind = spec.kind
    if kind == "run":
        assert spec.run is not None
        return {
            "argv": [_argv_item(render(arg, context)) for arg in spec.run],
            "env": {k: _argv_item(render(v, context)) for k, v in spec.env.items()},
            "cwd": render(spec.cwd, context),
        }
    if kind == "http":
        assert spec.http is not None
        return dict(render(spec.http.model_dump(by_alias=True), context))
    if kind == "action":
        return {"ref": spec.action, "with": render(spec.with_, context)}
    if kind == "notify":
        assert spec.notify is not None
        return {"text": _argv_item(render(spec.notify.text, context)), "channel": spec.notify.channel}
    if isinstance(spec, Step):
        if kind == "llm":
            assert spec.llm is not None
            return dict(render(spec.llm.model_dump(), context))
        if kind == "workflow":
            return {"workflow": spec.workflow, "with": render(spec.with_, context)}
    raise ValueError(f"step kind {kind!r} has no parameters to render")


def wait_until(value: Any, now: float) -> float:
    """The epoch second a ``wait: {until: ...}`` ends, from an ISO time, an epoch number or a datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"'until' must be an ISO time like 2026-11-21T14:00:00Z, got {value!r}"
            ) from None
    else:
        raise ValueError(f"'until' must be an ISO time, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _argv_item(value: Any) -> str:
    # An expression renders into exactly one argv item: lists and mappings become JSON, never split words.
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
