"""The JSON Schema of the workflow format, for editors (``# yaml-language-server: $schema=...``).

Generated from the pydantic models, then widened where the models accept more than their types say:
durations as text, the ``notify`` and ``wait`` shorthands, ``depends_on`` for ``needs``, one value
where a list is expected. The loader remains the judge; the schema gives completion and early hints.
It declares draft 2020-12 but keeps to keywords draft-07 tools read the same way, because the YAML
language server validates with draft-07 semantics (redhat-developer/yaml-language-server#856).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from engine import spec
from engine.fields import field_is_duration
from engine.handover_spec import CHANNEL_KEY

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DURATION_PATTERN = r"^ *(\d+(\.\d+)? *|(\d+(\.\d+)? *(ms|s|m|h|d) *)+)$"
_DURATION: list[dict[str, Any]] = [
    {"type": "number", "minimum": 0},
    {"type": "string", "pattern": DURATION_PATTERN},
]
_DOCS = {
    "needs": "Steps that must finish before this one starts.",
    "depends_on": "Another name for 'needs'.",
    "if": (
        "Run the step only when this expression (GitHub Actions' language) is true: bare, "
        "inputs.env == 'prod', or ${{ inputs.env == 'prod' }}. An if: calling success(), failure(), "
        "always() or cancelled() decides alone; an if: that cannot be evaluated fails the step."
    ),
    "trigger": (
        "Which outcomes of the needed steps let this step run: all_success is success(), "
        "all_done is always(), one_failed is failure(), none_failed is !failure() with skips allowed."
    ),
    "for_each": "A list, or an expression giving a list: the step runs once per item (item, index).",
    "outputs": "Values this step exposes to later steps as steps.<id>.outputs.<name>.",
    "env": "Environment variables for the program; expressions read them (and the workflow's) as env.<NAME>.",
    "compensate": "What undoes this step when a later step fails and on_failure is 'compensate'.",
    "run": "A program and its arguments, as a list (never a shell string).",
    "action": "A Python function as module:function.",
    "workflow": "The name of a workflow to run as a sub-workflow.",
    "with": "Arguments passed to the action or sub-workflow.",
    "on_interrupt": (
        "For a 'run' step whose program was running on another host when its bot process died, or a step "
        "with runs_on whose runner stopped heart-beating: rerun "
        "(the default, at least once), fail, or ask (an approval: run it again?). On the same host the "
        "leftover program is killed first and the step always runs again."
    ),
    "checkpoint": (
        "true, or a name: record the run's state once this step succeeds, so 'switchboard workflow rewind "
        "RUN --to NAME' can undo what came after (through compensate, newest first) and go on from here."
    ),
    "runs_on": (
        "Runner labels: the step or its compensation (run, http or action; background too) runs on a "
        "`switchboard runner` that has every one of them, and waits for one up to its timeout. Without it, "
        "it runs where its run is; a compensation does not take its step's runs_on."
    ),
    "background": (
        "Run this run, http, action or llm step in the background (it needs a 'timeout:'): steps "
        "that need it start once it has started, its failure is reported but does not fail the run, "
        "and the run's end waits for it at most its timeout, then cancels it."
    ),
}


def json_schema() -> dict[str, Any]:
    """The workflow format as a JSON Schema (draft 2020-12) an editor or jsonschema can use."""
    schema = copy.deepcopy(spec.Workflow.model_json_schema(by_alias=True, mode="validation"))
    defs: dict[str, Any] = schema["$defs"]
    for name, definition in [("Workflow", schema), *defs.items()]:
        model = getattr(spec, name)
        _durations(model, definition["properties"])
    step, compensate = defs["Step"], defs["CompensateSpec"]
    _shorthands(step["properties"])
    _shorthands(compensate["properties"])
    needs = step["properties"]["needs"]
    needs.update(anyOf=[{"type": "string"}, {"type": "array", "items": {"type": "string"}}])
    del needs["type"], needs["items"]
    step["properties"]["depends_on"] = {**copy.deepcopy(needs), "title": "Depends On"}
    step["not"] = {"required": ["needs", "depends_on"]}
    for key, doc in _DOCS.items():
        step["properties"][key]["description"] = doc
    step["properties"]["if"]["anyOf"][1:1] = [{"type": "boolean"}, {"type": "number"}]  # if: true
    step["properties"]["checkpoint"]["anyOf"][1]["pattern"] = spec.STEP_ID.pattern  # a name, as a step id
    step["oneOf"] = [{"required": [kind]} for kind in spec.STEP_KINDS]
    compensate["oneOf"] = [{"required": [kind]} for kind in spec.COMPENSATE_KINDS]
    http = defs["HttpSpec"]["properties"]
    http["method"]["enum"] += [m.lower() for m in http["method"]["enum"]]
    status = http["expect_status"]["anyOf"]
    status.insert(0, {"type": "integer"})
    retry = defs["RetrySpec"]["properties"]
    retry["jitter"] = {"anyOf": [{"type": "boolean"}, _without(retry["jitter"], "default", "title")]}
    schedule = defs["TriggersSpec"]["properties"]["schedule"]  # one entry may be given without a list
    defs["TriggersSpec"]["properties"]["schedule"] = {
        "anyOf": [
            {"type": "string", "description": "A cron expression, read in UTC."},
            {"$ref": "#/$defs/ScheduleSpec"},
            _without(schedule, "title", "default"),
        ],
        "default": [],
        "description": "Cron schedules, each read in its own time zone.",
    }
    channels = defs["WorkflowHandover"]["properties"]["channels"]
    channels["propertyNames"] = {"pattern": CHANNEL_KEY.pattern}
    steps = schema["properties"]["steps"]
    steps["propertyNames"] = {"pattern": spec.STEP_ID.pattern}
    steps["description"] = "The steps, by id; each has exactly one kind: " + ", ".join(spec.STEP_KINDS)
    return {
        "$schema": DRAFT,
        "title": "Switchboard workflow",
        "description": "A durable workflow run by Switchboard from Slack, Discord or the console.",
        **{k: v for k, v in schema.items() if k not in ("title", "$id")},
    }


def _durations(model: type[BaseModel], properties: dict[str, Any]) -> None:
    for name, field in model.model_fields.items():
        if not field_is_duration(field):
            continue
        prop = properties[field.alias or name]
        nullable = [m for m in prop.pop("anyOf", []) if m.get("type") == "null"]
        prop.pop("type", None)
        prop["anyOf"] = copy.deepcopy(_DURATION) + nullable
        prop["description"] = "Seconds, or text like 30s, 10m, 2h or 1h30m."


def _shorthands(properties: dict[str, Any]) -> None:
    # `notify: text` means {text: ...}; `wait: 10m` means {for: 10m} (see _wrap_text, _wrap_wait in spec).
    properties["notify"]["anyOf"].insert(0, {"type": "string"})
    if "wait" in properties:
        properties["wait"]["anyOf"][:0] = copy.deepcopy(_DURATION)


def _without(schema: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in keys}
