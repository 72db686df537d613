"""Scheduled triggers (issue 11): `schedules:` parsing and validation, Azure's (NCrontab's) cron syntax,
next fire times in UTC, and the branch decision. Microsoft's documented examples are tables here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlyard.pipelines import PipelineError, load_pipeline
from mlyard.pipelines.schedules import (
    CronError,
    Schedule,
    next_fires,
    parse_cron,
    parse_schedules,
    schedule_decision,
)
from mlyard.pipelines.triggers import Filter

# A Monday (2026-11-30 is a Monday).
MONDAY = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)

DOCS_EXAMPLE = """\
schedules:
- cron: '0 0 * * *'
  displayName: Daily midnight build
  branches:
    include:
    - main
    - releases/*
    exclude:
    - releases/ancient/*
- cron: '0 12 * * 0'
  displayName: Weekly Sunday build
  branches:
    include:
    - releases/*
  always: true
steps:
- script: echo hi
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(cron: str, after: str, count: int = 3) -> list[str]:
    return [f"{t:%Y-%m-%d %a %H:%M}" for t in next_fires(parse_cron(cron), at(after), count)]


# The "Cron syntax" table of "Configure schedules for pipelines": each row's expressions are the same schedule.
@pytest.mark.parametrize(
    "expressions",
    [
        ("0 18 * * Mon,Wed,Fri", "0 18 * * 1,3,5", "0 18 * * 1-5/2"),
        ("0 0,6,12,18 * * *", "0 */6 * * *", "0 0-18/6 * * *"),
        ("0 9,15,21 * * *", "0 9-21/6 * * *"),
        ("30 21 * * Sun-Thu", "30 21 * * 0-4", "30 21 * * 0,1,2,3,4"),
        ("0 8 * * Mon-Fri", "0 8 * * 1-5", "0 8 * * 1,2,3,4,5"),
        ("0 3 * * Sun", "0 3 * * 0", "0 3 * * sunday"),
        ("0 5 * * Sun,Thu-Sat", "0 5 * * 0,4,5,6"),
    ],
)
def test_documented_equivalent_cron_expressions(expressions: tuple[str, ...]) -> None:
    parsed = [parse_cron(text) for text in expressions]
    first = parsed[0]
    for other in parsed[1:]:
        assert (other.minutes, other.hours, other.days, other.months, other.weekdays) == (
            first.minutes, first.hours, first.days, first.months, first.weekdays,
        )  # fmt: skip
    assert fires(expressions[0], "2026-11-30T00:00", 1) == fires(expressions[-1], "2026-11-30T00:00", 1)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 18 * * Mon,Wed,Fri", "2026-11-30T18:00",
         ["2026-12-02 Wed 18:00", "2026-12-04 Fri 18:00", "2026-12-07 Mon 18:00"]),
        ("0 9-21/6 * * *", "2026-11-30T10:00",
         ["2026-11-30 Mon 15:00", "2026-11-30 Mon 21:00", "2026-12-01 Tue 09:00"]),
        ("0 0 * * *", "2026-11-30T00:00", ["2026-12-01 Tue 00:00", "2026-12-02 Wed 00:00", "2026-12-03 Thu 00:00"]),
        ("0 12 * * 0", "2026-11-30T00:00", ["2026-12-06 Sun 12:00", "2026-12-13 Sun 12:00", "2026-12-20 Sun 12:00"]),
        ("*/15 * * * *", "2026-11-30T23:50", ["2026-12-01 Tue 00:00", "2026-12-01 Tue 00:15", "2026-12-01 Tue 00:30"]),
        ("0 0 31 * *", "2026-11-01T00:00", ["2026-12-31 Thu 00:00", "2027-01-31 Sun 00:00", "2027-03-31 Wed 00:00"]),
        ("0 0 29 Feb *", "2026-01-01T00:00", ["2028-02-29 Tue 00:00", "2032-02-29 Sun 00:00", "2036-02-29 Fri 00:00"]),
        ("0 0 1 jan,July *", "2026-11-30T00:00",
         ["2027-01-01 Fri 00:00", "2027-07-01 Thu 00:00", "2028-01-01 Sat 00:00"]),
        # NCrontab (Azure) requires both the day of the month and the day of the week (classic cron: either).
        ("0 0 13 * Fri", "2026-01-01T00:00", ["2026-02-13 Fri 00:00", "2026-03-13 Fri 00:00", "2026-11-13 Fri 00:00"]),
        # a backwards range is the same range (NCrontab swaps it)
        ("0 0 * * 5-1", "2026-11-30T00:00", ["2026-12-01 Tue 00:00", "2026-12-02 Wed 00:00", "2026-12-03 Thu 00:00"]),
        ("0 0 31 2 *", "2026-11-30T00:00", []),
    ],
)
def test_next_fire_times_in_utc(cron: str, after: str, expected: list[str]) -> None:
    assert fires(cron, after) == expected


def test_next_fire_is_strictly_after_and_converts_other_time_zones() -> None:
    cron = parse_cron("0 0 * * *")
    assert cron.next_after(MONDAY) == datetime(2026, 12, 1, tzinfo=UTC)
    assert cron.matches(MONDAY) and not cron.matches(datetime(2026, 11, 30, 0, 1, tzinfo=UTC))
    from datetime import timedelta, timezone

    paris = datetime(2026, 11, 30, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 23:30 UTC the day before
    assert cron.next_after(paris) == MONDAY
    assert cron.next_after(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) is None  # no year 10000: never


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 0 * *", "expected 5 fields: minutes hours days months days-of-week, e.g. '0 3 * * Mon-Fri'; got 4 fields"),
        (
            "0 0 0 * * *",
            "expected 5 fields: minutes hours days months days-of-week, e.g. '0 3 * * Mon-Fri'; got 6 fields; "
            "Azure's cron has no seconds or years field",
        ),
        ("60 0 * * *", "60 is out of range in the minutes field: use 0 through 59"),
        ("0 24 * * *", "24 is out of range in the hours field: use 0 through 23"),
        ("0 0 0 * *", "0 is out of range in the days field: use 1 through 31"),
        ("0 0 * 13 *", "13 is out of range in the months field: use 1 through 12"),
        ("0 0 * * 7", "7 is out of range in the days-of-week field: use 0 through 6 (Sunday is 0)"),
        ("0 0 * * Mo", "'Mo' is not a days-of-week name: use 0 through 6, a full English name or its first three "
         "letters (Sun, Mon, Tue, Wed, Thu, Fri, Sat)"),
        ("0 0 * Foo *", "'Foo' is not a month name: use 1 through 12, a full English name or its first three "
         "letters (Jan, Feb, Mar, Apr, May, Jun, Jul, Aug, Sep, Oct, Nov, Dec)"),
        ("x 0 * * *", "'x' is not a number in the minutes field: use 0 through 59"),
        ("*/0 * * * *", "'*/0' in the minutes field: the step after '/' must be a whole number from 1"),
        ("0 0 ? * *", "'?' in the days field: '?', 'L', 'W' and '#' are not part of Azure's cron syntax"),
        ("0 0 1,,2 * *", "an empty element in the days field (two commas in a row, or a trailing comma)"),
        ("0 0 1- * *", "'1-' in the days field: a range needs a first and a last value, e.g. 1-5"),
        ("\u00b2 * * * *", "'\u00b2' is not a number in the minutes field: use 0 through 59"),
        ("*/\u00b2 * * * *", "'*/\u00b2' in the minutes field: the step after '/' must be a whole number from 1"),
    ],
)
def test_invalid_cron_says_which_field_and_what_to_write(cron: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(cron)
    assert str(raised.value) == message


def test_documented_example_parses_into_typed_schedules() -> None:
    pipeline = load_pipeline(DOCS_EXAMPLE, name="ci.yml")
    daily, weekly = pipeline.schedules
    assert daily == Schedule(
        parse_cron("0 0 * * *"),
        "Daily midnight build",
        Filter(include=("main", "releases/*"), exclude=("releases/ancient/*",)),
    )
    assert (daily.always, daily.batch, weekly.always, weekly.batch) == (False, False, True, False)
    assert weekly.branches == Filter(include=("releases/*",))


@pytest.mark.parametrize(
    ("ref", "daily", "weekly"),
    [
        ("refs/heads/main", "branch 'main' matches include 'main'", "branch 'main' matches no include ['releases/*']"),
        ("releases/v1", "branch 'releases/v1' matches include 'releases/*'",
         "branch 'releases/v1' matches include 'releases/*'"),
        (
            "refs/heads/releases/ancient/v0",
            "branch 'releases/ancient/v0' is excluded by 'releases/ancient/*'",
            "branch 'releases/ancient/v0' matches include 'releases/*'",
        ),
        ("refs/heads/feature", "branch 'feature' matches no include ['main', 'releases/*']",
         "branch 'feature' matches no include ['releases/*']"),
    ],
)
def test_documented_example_branch_decisions(ref: str, daily: str, weekly: str) -> None:
    first, second = load_pipeline(DOCS_EXAMPLE, name="ci.yml").schedules
    assert schedule_decision(first, ref, after=MONDAY).reason == daily
    assert schedule_decision(second, ref, after=MONDAY).reason == weekly
    assert schedule_decision(first, ref, after=MONDAY).run == ("matches include" in daily)


def test_decision_carries_the_next_fire_times() -> None:
    daily, weekly = load_pipeline(DOCS_EXAMPLE, name="ci.yml").schedules
    decision = schedule_decision(weekly, "refs/heads/releases/v1", after=MONDAY, count=2)
    assert decision.run and decision.next_fires == (at("2026-12-06T12:00"), at("2026-12-13T12:00"))
    assert schedule_decision(daily, "refs/tags/v1", after=MONDAY).reason == (
        "schedules run branches only, and 'refs/tags/v1' is not a branch"
    )


def test_exclude_without_include_means_every_branch_and_no_branches_means_the_default_branch() -> None:
    (only_exclude,) = parse_schedules([{"cron": "0 0 * * *", "branches": {"exclude": ["wip/*"]}}])
    assert schedule_decision(only_exclude, "feature", after=MONDAY).run
    assert not schedule_decision(only_exclude, "wip/x", after=MONDAY).run
    (no_branches,) = parse_schedules([{"cron": "0 0 * * *"}])
    assert schedule_decision(no_branches, "main", after=MONDAY, default_branch="main").run
    assert schedule_decision(no_branches, "dev", after=MONDAY, default_branch="refs/heads/main").reason == (
        "the schedule has no branches: it runs the default branch only, not branch 'dev'"
    )


def test_booleans_accept_the_schema_spellings() -> None:
    (schedule,) = parse_schedules([{"cron": "0 0 * * *", "always": "yes", "batch": "On"}])
    assert (schedule.always, schedule.batch) == (True, True)


def test_every_problem_is_reported_with_file_line_and_column() -> None:
    text = """\
schedules:
- displayName: nightly
  cron: '0 25 * * *'
  branches:
    include: main
  always: maybe
  timezone: CET
- cron: 5
- '0 0 * * *'
- displayName: no cron
steps:
- script: echo hi
"""
    with pytest.raises(PipelineError) as raised:
        load_pipeline(text, name="ci.yml")
    assert raised.value.errors == [
        "ci.yml:3:3: schedules[0].cron: 'cron' must be the first key of a schedule (Azure requires it); move it up",
        "ci.yml:3:3: schedules[0].cron: invalid cron '0 25 * * *': 25 is out of range in the hours field: "
        "use 0 through 23",
        "ci.yml:5:5: schedules[0].branches.include: expected a list of strings, got the string 'main'; "
        "write a list: [main]",
        "ci.yml:6:3: schedules[0].always: expected true or false, got the string 'maybe'",
        "ci.yml:7:3: schedules[0].timezone: unknown key 'timezone'; supported keys: cron, displayName, "
        "branches, batch, always",
        "ci.yml:8:3: schedules[1].cron: expected a cron expression (a string, quoted: '0 0 * * *'), got a number",
        "ci.yml:9:3: schedules[2]: expected a schedule (a mapping with cron, displayName, branches, ...), "
        "got the string '0 0 * * *'",
        "ci.yml:10:3: schedules[3]: a schedule needs 'cron', e.g. cron: '0 3 * * *'",
    ]


def test_schedules_must_be_a_list_and_take_no_variables() -> None:
    with pytest.raises(PipelineError) as raised:
        load_pipeline("schedules:\n  cron: '0 0 * * *'\nsteps:\n- script: x\n", name="ci.yml")
    assert raised.value.errors == [
        "ci.yml:1:1: schedules: expected a list of schedules (- cron: '0 0 * * *'), got a mapping"
    ]
    text = "schedules:\n- cron: '0 $(hour) * * *'\n  branches:\n    include: [$(branch)]\nsteps:\n- script: x\n"
    with pytest.raises(PipelineError) as raised:
        load_pipeline(text, name="ci.yml")
    assert raised.value.errors == [
        "ci.yml:2:3: schedules[0].cron: variables and expressions cannot be used in schedules",
        "ci.yml:4:15: schedules[0].branches.include[0]: variables cannot be used in triggers: they are evaluated "
        "at runtime, after the trigger has fired",
    ]


def test_no_schedules_key_means_no_schedules_and_schedules_is_no_longer_unsupported() -> None:
    assert load_pipeline("steps:\n- script: x\n", name="ci.yml").schedules == ()
    assert load_pipeline("schedules: []\nsteps:\n- script: x\n", name="ci.yml").schedules == ()
