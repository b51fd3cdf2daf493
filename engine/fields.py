"""Which model and field of the workflow format validate a given path, read from the pydantic models.

Used to name the keys a mapping accepts (for "did you mean") and to tell durations from other numbers.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

from engine.spec import Duration, Workflow

_DURATION_CHECK = get_args(Duration)[1]


def type_at(loc: Sequence[str | int]) -> Any:
    """The annotation that validates the value at ``loc`` of a workflow, or None if loc leaves the format."""
    annotation: Any = Workflow
    for part in loc:
        annotation = _step_into(annotation, part)
        if annotation is None:
            return None
    return annotation


def model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc``, if any."""
    return next((m for m in _members(type_at(loc)) if _is_model(m)), None)


def accepted_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts in a workflow file, aliases included, in declaration order."""
    return [key for name, field in model.model_fields.items() for key in _keys_of(name, field)]


def _keys_of(name: str, field: FieldInfo) -> list[str]:
    keys = [field.alias or name]
    if isinstance(field.validation_alias, AliasChoices):
        keys += [c for c in field.validation_alias.choices if isinstance(c, str) and c not in keys]
    return keys


def is_duration(annotation: Any) -> bool:
    """Whether an annotation is (or optionally holds) ``engine.spec.Duration``."""
    if get_origin(annotation) is Annotated:
        return _DURATION_CHECK in get_args(annotation)[1:] or is_duration(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return any(is_duration(arg) for arg in get_args(annotation))
    return False


def field_is_duration(field: FieldInfo) -> bool:
    """Whether a model field holds a duration (written like 30s, 10m or 2h)."""
    return _DURATION_CHECK in field.metadata or is_duration(field.annotation)


def _members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [] if annotation is None else [annotation]


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _step_into(annotation: Any, part: str | int) -> Any:
    for member in _members(annotation):
        if _is_model(member):
            for name, field in member.model_fields.items():
                if part == name or part in _keys_of(name, field):
                    return (
                        Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
                    )
        elif get_origin(member) is dict:
            return get_args(member)[1]
        elif get_origin(member) is list and isinstance(part, int):
            return get_args(member)[0]
    return None
