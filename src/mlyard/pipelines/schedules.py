"""Scheduled triggers: the ``schedules:`` section of a pipeline, Azure's cron syntax and next fire times.

Pure: plain Python values in (what PyYAML loads), frozen dataclasses out; the parser turns a
:class:`~mlyard.pipelines.triggers.TriggerSyntaxError` (key path relative to ``schedules``) into a
Diagnostic with file:line:col. Times are UTC, as in Azure ("The time zone for cron schedules is
UTC"; no daylight saving time).

Semantics, from Microsoft's "Configure schedules for pipelines" and the ``schedules.cron`` YAML
schema page; where the docs are silent the choice is marked *ours*:

- ``schedules`` is a list; each item has ``cron`` (required, the first key, as the official schema's
  ``firstProperty`` says), ``displayName``, ``branches`` (include/exclude, wildcards as in CI
  triggers: :mod:`mlyard.pipelines.patterns`; an ``exclude`` without ``include`` means
  ``include: ['*']``), ``always`` and ``batch`` (booleans, default false). No schedule: no
  scheduled runs. Variables cannot be used in schedules.
- A schedule without ``branches`` applies to the repository's default branch only (*ours*: the
  docs are silent; it is what users report).
- Cron: five fields ``minute hour day month day-of-week`` separated by spaces. Each field is ``*``,
  a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (``a`` to the maximum), or a comma
  list of those. Months and days of the week also take English names, full or their first three
  letters, in any case (``Jan``, ``january``, ``Mon``, ``Sunday``). Sunday is 0; 7 is not accepted.
  This is NCrontab's syntax, which Azure uses (the cron section of the docs links to it). Like
  NCrontab, a range written backwards (``5-1``) means the same as ``1-5``, and a time matches when
  *every* field matches: a day of the month and a day of the week are both required (classic cron
  takes either). *Ours*: names must have at least three letters (NCrontab takes any prefix), and a
  step of 0 is an error (NCrontab reads it as 1).
- The first fire is the first time the cron matches after the schedule was first seen for the branch
  (Azure: when the pipeline is created, its YAML updated or the branch created). Fires missed while
  the server was down are run once, not once each (Azure does not catch up).
- ``always: false``: a fire is skipped when the branch's head commit is the commit of the last
  successful scheduled run of that schedule. ``batch: true`` (with ``always: false``): a fire is
  skipped while a run of that schedule is still in progress. ``always: true`` ignores ``batch``.
  The server side (the state per pipeline, schedule and branch) is :mod:`mlyard.ci.schedules`.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlyard.pipelines.patterns import HEADS, full_ref, ref_filter
from mlyard.pipelines.triggers import (
    Filter,
    _batch,
    _filter,
    _key_of,
    _kind,
    _Problems,
    _unknown_key,
)

__all__ = [
    "Cron",
    "CronError",
    "Schedule",
    "ScheduleDecision",
    "describe_fires",
    "next_fires",
    "parse_cron",
    "parse_schedules",
    "schedule_decision",
]

SCHEDULE_KEYS: tuple[str, ...] = ("cron", "displayName", "branches", "batch", "always")
MAX_SCHEDULES = 100  # schedules of one pipeline
MAX_CRON_CHARS = 200  # characters of one cron expression
MAX_DISPLAY_NAME = 255  # characters of a schedule's displayName
SEARCH_YEARS = 50  # a cron matching no time within this many years never fires ('0 0 31 2 *')

_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("days", 1, 31),
    ("months", 1, 12),
    ("days-of-week", 0, 6),
)
_MONTHS = tuple(calendar.month_name[1:])  # January .. December (English: the C locale's names)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NAMES: dict[str, tuple[str, ...]] = {"months": _MONTHS, "days-of-week": _WEEKDAYS}
_CRON_SHAPE = "5 fields: minutes hours days months days-of-week, e.g. '0 3 * * Mon-Fri'"


class CronError(ValueError):
    """A cron expression Azure would not accept; the message says which field and why."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the text as written and the set of values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # Sunday is 0

    def matches(self, moment: datetime) -> bool:
        """Whether the minute of ``moment`` (UTC) is a fire time."""
        moment = _utc(moment)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and self._day_matches(moment.year, moment.month, moment.day)
        )

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        if month not in self.months or day not in self.days:
            return False
        return (calendar.weekday(year, month, day) + 1) % 7 in self.weekdays

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (UTC, whole minutes), None when there is none
        within :data:`SEARCH_YEARS` years. Bounded: at most one step per month, then per matching day."""
        try:
            start = _utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1)
        except OverflowError:  # the last minute of year 9999: there is no later time
            return None
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        year, month = start.year, start.month
        for _ in range(SEARCH_YEARS * 12):
            if year > datetime.max.year:
                return None
            if month in self.months:
                first_day = start.day if (year, month) == (start.year, start.month) else 1
                for day in range(first_day, calendar.monthrange(year, month)[1] + 1):
                    if not self._day_matches(year, month, day):
                        continue
                    found = _first_time(hours, minutes, start, (year, month, day))
                    if found is not None:
                        return found
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return None


def _first_time(
    hours: list[int], minutes: list[int], start: datetime, date: tuple[int, int, int]
) -> datetime | None:
    """The first (hour, minute) of ``date`` at or after ``start``."""
    same_day = date == (start.year, start.month, start.day)
    for hour in hours:
        if same_day and hour < start.hour:
            continue
        for minute in minutes:
            if same_day and hour == start.hour and minute < start.minute:
                continue
            return datetime(*date, hour, minute, tzinfo=UTC)
    return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def next_fires(cron: Cron, after: datetime, count: int) -> tuple[datetime, ...]:
    """Up to ``count`` (at most 100) fire times strictly after ``after``."""
    found: list[datetime] = []
    moment: datetime | None = after
    for _ in range(max(0, min(count, 100))):
        moment = cron.next_after(moment) if moment is not None else None
        if moment is None:
            break
        found.append(moment)
    return tuple(found)


# --- cron parsing ------------------------------------------------------------------------------


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _value(text: str, field: str, low: int, high: int) -> int:
    if _digits(text):
        value = int(text)
        if not low <= value <= high:
            extra = " (Sunday is 0)" if field == "days-of-week" else ""
            raise CronError(f"{value} is out of range in the {field} field: use {low} through {high}{extra}")
        return value
    names = _NAMES.get(field)
    if names is None:
        raise CronError(f"'{text}' is not a number in the {field} field: use {low} through {high}")
    lowered = text.lower()
    if len(lowered) >= 3:
        for index, name in enumerate(names):
            if name.lower().startswith(lowered):
                return index + low
    listed = ", ".join(name[:3] for name in names)
    raise CronError(
        f"'{text}' is not a {field[:-1] if field.endswith('s') else field} name: use {low} through {high}, "
        f"a full English name or its first three letters ({listed})"
    )


def _item(text: str, field: str, low: int, high: int) -> set[int]:
    """One comma-separated element: ``*``, ``a``, ``a-b``, each optionally ``/step``."""
    if not text:
        raise CronError(f"an empty element in the {field} field (two commas in a row, or a trailing comma)")
    if "?" in text or "#" in text:
        raise CronError(f"'{text}' in the {field} field: '?', 'L', 'W' and '#' are not part of Azure's cron syntax")
    base, slash, step_text = text.partition("/")
    step = 1
    if slash:
        if not _digits(step_text) or int(step_text) == 0:
            raise CronError(f"'{text}' in the {field} field: the step after '/' must be a whole number from 1")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    elif "-" in base:
        left, _, right = base.partition("-")
        if not left or not right:
            raise CronError(f"'{text}' in the {field} field: a range needs a first and a last value, e.g. 1-5")
        first, last = sorted((_value(left, field, low, high), _value(right, field, low, high)))
    else:
        first = _value(base, field, low, high)
        last = high if slash else first
    return set(range(first, last + 1, step))


def parse_cron(text: str) -> Cron:
    """Parse a cron expression in Azure's (NCrontab's) syntax; raises :class:`CronError`."""
    if len(text) > MAX_CRON_CHARS:
        raise CronError(f"the cron expression is longer than {MAX_CRON_CHARS} characters")
    parts = text.split()
    if len(parts) != 5:
        hint = "; Azure's cron has no seconds or years field" if len(parts) in (6, 7) else ""
        raise CronError(f"expected {_CRON_SHAPE}; got {len(parts)} field{'s' if len(parts) != 1 else ''}{hint}")
    sets: list[frozenset[int]] = []
    for part, (field, low, high) in zip(parts, _FIELDS, strict=True):
        values: set[int] = set()
        for element in part.split(","):
            values |= _item(element, field, low, high)
        sets.append(frozenset(values))
    return Cron(" ".join(parts), *sets)


# --- schedules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One item of ``schedules:``. ``branches`` None: the repository's default branch only."""

    cron: Cron
    display_name: str = ""
    branches: Filter | None = None
    always: bool = False
    batch: bool = False

    @property
    def name(self) -> str:
        """How the schedule is named in messages: its displayName, else its cron."""
        return self.display_name or self.cron.text


@dataclass(frozen=True)
class ScheduleDecision:
    """Whether a schedule applies to a branch, why, and its next fire times after the given moment."""

    schedule: Schedule
    run: bool
    reason: str
    next_fires: tuple[datetime, ...] = ()


def _schedule(item: Any, index: int, problems: _Problems) -> Schedule | None:
    if not isinstance(item, dict):
        shape = "a schedule (a mapping with cron, displayName, branches, ...)"
        problems.add((index,), f"expected {shape}, got {_kind(item)}")
        return None
    keys = list(item)
    if "cron" not in item:
        problems.add((index,), "a schedule needs 'cron', e.g. cron: '0 3 * * *'")
    elif keys[0] != "cron":
        problems.add((index, "cron"), "'cron' must be the first key of a schedule (Azure requires it); move it up")
    cron = None
    values: dict[str, Any] = {}
    for key, value in item.items():
        at = (index, _key_of(key))
        if key == "cron":
            cron = _cron_value(value, at, problems)
        elif key == "displayName":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                problems.add(at, f"expected a string, got {_kind(value)}")
            elif len(str(value)) > MAX_DISPLAY_NAME:
                problems.add(at, f"the display name is longer than {MAX_DISPLAY_NAME} characters")
            else:
                values["display_name"] = str(value)
        elif key == "branches":
            sub = _Problems()
            values["branches"] = _filter(value, "branches", sub)
            for problem in sub.found:
                problems.add((index, *problem.key_path), problem.message)
        elif key in ("always", "batch"):
            sub = _Problems()
            values[key] = _batch(value, sub)
            if sub.found:
                problems.add(at, sub.found[0].message)
        else:
            problems.add(at, _unknown_key(key, SCHEDULE_KEYS))
    return Schedule(cron, **values) if cron is not None else None


def _cron_value(value: Any, at: tuple[str | int, ...], problems: _Problems) -> Cron | None:
    if not isinstance(value, str):
        problems.add(at, f"expected a cron expression (a string, quoted: '0 0 * * *'), got {_kind(value)}")
        return None
    if "$(" in value or "${{" in value:
        problems.add(at, "variables and expressions cannot be used in schedules")
        return None
    try:
        return parse_cron(value)
    except CronError as exc:
        problems.add(at, f"invalid cron '{value.strip()[:MAX_CRON_CHARS]}': {exc}")
        return None


def parse_schedules(value: Any, *, present: bool = True) -> tuple[Schedule, ...]:
    """Parse the value of ``schedules:``; ``present=False`` when the file has none (no schedules).

    Raises :class:`~mlyard.pipelines.triggers.TriggerSyntaxError` (the first problem; ``.problems``
    holds all of them), key paths relative to ``schedules``.
    """
    if not present or value is None:
        return ()
    problems = _Problems()
    if not isinstance(value, list | tuple):
        problems.add((), f"expected a list of schedules (- cron: '0 0 * * *'), got {_kind(value)}")
        problems.raise_if_any()
    if len(value) > MAX_SCHEDULES:
        problems.add((), f"a pipeline has at most {MAX_SCHEDULES} schedules, got {len(value)}")
        problems.raise_if_any()
    schedules = [_schedule(item, index, problems) for index, item in enumerate(value)]
    problems.raise_if_any()
    return tuple(schedule for schedule in schedules if schedule is not None)


def schedule_decision(
    schedule: Schedule, ref: str, *, after: datetime, default_branch: str | None = None, count: int = 1
) -> ScheduleDecision:
    """Whether ``schedule`` (read from the YAML of branch ``ref``) runs ``ref``, why, and its next
    ``count`` fire times after ``after``. ``default_branch`` (a name or a ref) is needed for a schedule
    without ``branches``; None means unknown."""
    full = full_ref(ref, prefix=HEADS)
    what = f"branch '{full.removeprefix(HEADS)}'"
    fires = next_fires(schedule.cron, after, count)
    if not full.startswith(HEADS):
        return ScheduleDecision(schedule, False, f"schedules run branches only, and '{full}' is not a branch")
    if schedule.branches is None:
        if default_branch is None:
            reason = "the schedule has no branches: it runs the repository's default branch only (unknown here)"
            return ScheduleDecision(schedule, False, reason, fires)
        default = full_ref(default_branch, prefix=HEADS)
        if default == full:
            reason = f"{what} is the default branch (the schedule has no branches)"
            return ScheduleDecision(schedule, True, reason, fires)
        return ScheduleDecision(
            schedule, False, f"the schedule has no branches: it runs the default branch only, not {what}", fires
        )
    branches = schedule.branches
    ok, why = ref_filter(branches.include, branches.exclude, tag=False).evaluate(full, what)
    return ScheduleDecision(schedule, ok, why, fires)


def describe_fires(fires: Sequence[datetime]) -> str:
    """``2026-11-30T00:00Z`` style times for messages, or 'never'."""
    return ", ".join(f"{fire:%Y-%m-%dT%H:%MZ}" for fire in fires) or "never"

