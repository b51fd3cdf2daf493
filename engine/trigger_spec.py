"""The ``on:`` section of a workflow: what starts it besides a person (a signed webhook, a schedule)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.cron import CronError, next_fire, parse_cron, time_zone

HOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CHANNEL = re.compile(r"^(slack|discord|console):[^\s:]+$")
MAX_SCHEDULES = 20
_PROBE = 1_767_225_600.0  # 2026-01-01 UTC: a schedule must fire at least once after it


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _channel(value: str | None) -> str | None:
    if value is not None and not CHANNEL.match(value):
        raise ValueError(
            f"{value!r} is not PLATFORM:CHANNEL, e.g. slack:C0123ABCD, discord:123456789 or console:ops"
        )
    return value


class WebhookSpec(_Strict):
    """``on: webhook``: a signed POST to /hooks/NAME starts a run; ``inputs`` map the payload (``event``)."""

    name: str = Field(description="The hook's name: it is POSTed to /hooks/NAME.")
    secret_env: str = Field(description="The environment variable holding the signing secret.")
    signature: Literal["github", "standard", "bearer"] = Field(
        default="standard",
        description=(
            "github: X-Hub-Signature-256; standard: the Standard Webhooks headers; bearer: "
            "Authorization: Bearer <secret>, for senders that cannot sign (Alertmanager)."
        ),
    )
    inputs: dict[str, Any] = Field(
        default={},
        description="The run's inputs, as expressions over the payload: ${{ event.repository.name }}.",
    )
    channel: str | None = Field(
        default=None,
        description="Where the run's status card goes: slack:C0123ABCD, discord:123456789 or console:ops.",
    )

    _check_channel = field_validator("channel")(_channel)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not HOOK_NAME.match(value):
            raise ValueError(
                f"hook name {value!r} must start with a letter or digit and hold only letters, digits, "
                "'.', '_' and '-' (at most 80)"
            )
        return value

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name, e.g. ALERTMANAGER_SECRET")
        return value


class ScheduleSpec(_Strict):
    """One ``on: schedule`` entry: a cron expression in a time zone, and what to do about a missed fire."""

    cron: str = Field(description="minute hour day-of-month month day-of-week, e.g. '0 3 * * *'.")
    timezone: str = Field(default="UTC", description="An IANA time zone, e.g. Europe/Berlin.")
    missed: Literal["run_once", "skip"] = Field(
        default="run_once",
        description="A fire missed while no Switchboard ran: run_once (runs once on start) or skip.",
    )
    inputs: dict[str, Any] = Field(default={}, description="The run's inputs.")
    channel: str | None = Field(
        default=None,
        description="Where the run's status card goes: slack:C0123ABCD, discord:123456789 or console:ops.",
    )

    _check_channel = field_validator("channel")(_channel)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            parse_cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            time_zone(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _fires(self) -> ScheduleSpec:
        if next_fire(parse_cron(self.cron), time_zone(self.timezone), _PROBE) is None:
            raise ValueError(f"cron '{self.cron}' never fires (no such date); check the day and month fields")
        return self


def origin(channel: str | None) -> dict[str, Any] | None:
    """A trigger's ``channel`` as a run's chat origin (what a status card is posted to)."""
    if channel is None:
        return None
    platform, _, where = channel.partition(":")
    return {"platform": platform, "channel": where, "thread": None, "channel_name": None}


class TriggersSpec(_Strict):
    """What starts the workflow: a webhook, schedules, or both."""

    webhook: WebhookSpec | None = None
    schedule: list[ScheduleSpec] = Field(default=[], max_length=MAX_SCHEDULES)

    @field_validator("schedule", mode="before")
    @classmethod
    def _one_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"cron": value}]  # schedule: "0 3 * * *" (UTC)
        return [value] if isinstance(value, dict) else value
