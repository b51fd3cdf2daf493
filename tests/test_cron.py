"""The pure cron module: parsing, next fire times in a time zone (with DST), and the loader's messages."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.cron import CronError, next_fire, parse_cron, time_zone
from engine.loader import WorkflowInvalid, load_text

BERLIN = time_zone("Europe/Berlin")
NEW_YORK = time_zone("America/New_York")


def at(zone_name: str, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=time_zone(zone_name), fold=fold).timestamp()  # type: ignore[misc]


def fires(expr: str, zone: str, start: float, count: int) -> list[str]:
    cron, tz = parse_cron(expr), time_zone(zone)
    out, moment = [], start
    for _ in range(count):
        found = next_fire(cron, tz, moment)
        assert found is not None
        out.append(datetime.fromtimestamp(found, tz).isoformat())
        moment = found
    return out


def test_daily_at_three_in_berlin_is_utc_two_in_winter_and_one_in_summer() -> None:
    assert fires("0 3 * * *", "Europe/Berlin", at("Europe/Berlin", 2027, 1, 15, 3, 0), 2) == [
        "2027-01-16T03:00:00+01:00",
        "2027-01-17T03:00:00+01:00",
    ]
    july = next_fire(parse_cron("0 3 * * *"), BERLIN, at("UTC", 2027, 7, 1, 0, 0))
    assert july == at("UTC", 2027, 7, 1, 1, 0)


def test_a_time_the_clocks_skip_fires_once_when_the_gap_ends() -> None:
    # 2027-03-28: Berlin jumps from 02:00 to 03:00.
    start = at("Europe/Berlin", 2027, 3, 27, 12, 0)
    assert fires("30 2 * * *", "Europe/Berlin", start, 3) == [
        "2027-03-28T03:00:00+02:00",
        "2027-03-29T02:30:00+02:00",
        "2027-03-30T02:30:00+02:00",
    ]
    # Every 15 minutes through the gap: 02:00-02:45 do not exist, so 03:00 fires once, then on as usual.
    assert fires("*/15 * * * *", "Europe/Berlin", at("Europe/Berlin", 2027, 3, 28, 1, 40), 4) == [
        "2027-03-28T01:45:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-28T03:15:00+02:00",
        "2027-03-28T03:30:00+02:00",
    ]


def test_a_time_the_clocks_repeat_fires_at_its_first_occurrence_only() -> None:
    # 2027-10-31: Berlin goes back from 03:00 to 02:00, so 02:30 happens twice.
    start = at("Europe/Berlin", 2027, 10, 30, 12, 0)
    assert fires("30 2 * * *", "Europe/Berlin", start, 2) == [
        "2027-10-31T02:30:00+02:00",
        "2027-11-01T02:30:00+01:00",
    ]
    second_half_past_two = at("Europe/Berlin", 2027, 10, 31, 2, 30, fold=1)
    assert fires("30 * * * *", "Europe/Berlin", second_half_past_two, 1) == ["2027-10-31T03:30:00+01:00"]


def test_new_york_changes_on_other_dates() -> None:
    # 2027-03-14 in New York: 02:00 -> 03:00.
    assert fires("0 2 * * *", "America/New_York", at("America/New_York", 2027, 3, 13, 12, 0), 2) == [
        "2027-03-14T03:00:00-04:00",
        "2027-03-15T02:00:00-04:00",
    ]


def test_fields_lists_ranges_steps_names_and_the_either_day_rule() -> None:
    start = at("UTC", 2027, 1, 1, 0, 0)  # a Friday
    assert fires("0 9-17/4 * * mon-fri", "UTC", start, 4) == [
        "2027-01-01T09:00:00+00:00",
        "2027-01-01T13:00:00+00:00",
        "2027-01-01T17:00:00+00:00",
        "2027-01-04T09:00:00+00:00",
    ]
    # Both day fields restricted: the 13th of a month OR a Friday.
    assert fires("0 0 13 * 5", "UTC", start, 3) == [
        "2027-01-08T00:00:00+00:00",
        "2027-01-13T00:00:00+00:00",
        "2027-01-15T00:00:00+00:00",
    ]
    assert fires("@monthly", "UTC", start, 1) == ["2027-02-01T00:00:00+00:00"]
    assert fires("0 0 29 feb *", "UTC", start, 1) == ["2028-02-29T00:00:00+00:00"]
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})
    assert next_fire(parse_cron("0 0 30 2 *"), NEW_YORK, start) is None


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 3 * *", "has 4 field(s); a cron expression has five"),
        ("60 * * * *", "minute 60 is out of range: it must be from 0 to 59"),
        ("0 3 * * funday", "day of week 'funday' is not a number from 0 to 7 or a name like sun"),
        ("*/0 * * * *", "the step after '/' must be a whole number above 0"),
        ("0 5-2 * * *", "the range runs backwards; write 2-5"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cron(expr)


def test_the_loader_points_at_a_bad_cron_or_time_zone_by_line() -> None:
    text = """name: nightly
on:
  schedule:
    - cron: "0 3 * *"
    - {cron: "0 3 * * *", timezone: Europe/Berlln}
    - cron: "0 0 31 4 *"
steps:
  a: {notify: hi}
"""
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, "nightly.yaml")
    lines = [str(e) for e in caught.value.errors]
    assert lines[0].startswith("nightly.yaml:4:13: 'on.schedule[0].cron': '0 3 * *' has 4 field(s)")
    assert lines[1].startswith(
        "nightly.yaml:5:37: 'on.schedule[1].timezone': 'Europe/Berlln' is not a time zone"
    )
    assert lines[2] == (
        "nightly.yaml:6:7: 'on.schedule[2]': cron '0 0 31 4 *' never fires (no such date); "
        "check the day and month fields"
    )


def test_the_loader_checks_trigger_inputs_and_the_event_context() -> None:
    text = """name: hooked
inputs:
  service: {type: string, required: true}
on:
  webhook:
    name: gh
    secret_env: GH_SECRET
    inputs: {servce: "${{ events.repository.name }}"}
  schedule: {cron: "@daily", inputs: {service: api}}
steps:
  a: {notify: hi}
"""
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, "h.yaml")
    messages = [e.message for e in caught.value.errors]
    assert "input 'servce' is not declared; did you mean 'service'?" in messages
    assert any("required input(s) service are not given" in m for m in messages)
    assert any("'events' is not a context; did you mean 'event'?" in m for m in messages)
    assert len(messages) == 3  # the schedule (one entry, not a list) gives service: valid
