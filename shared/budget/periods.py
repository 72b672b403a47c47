"""Calendar periods in an IANA timezone, as ranges of epoch-aligned minute buckets.

The default periods (`PeriodKind`: week, month, quarter) start at local midnight of their first
day (Monday for a week), converted to UTC; so a month in Europe/Berlin that contains the March
change is an hour shorter than its days suggest. An anchored calendar (`Calendar`, OpenSLO's
`calendar.startTime` with a duration such as `1w` or `2M`) has periods `anchor + k × duration` for
every integer k, in local calendar arithmetic: days and weeks add local days at the same wall-clock
time, months, quarters and years add months from the anchor (a day past the month's end is its
last day: from 31 January, 1M periods start 28/29 February, 31 March, 30 April, ...). A local start
time in a DST gap maps to the transition instant (the first local time after the gap), one that
occurs twice to its first occurrence. Every IANA offset in use since 1972 is a whole number of
minutes, so period boundaries fall on bucket boundaries (docs/design.md §3.6, §3.7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.timeutil import MINUTE_MS


class PeriodKind(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


# Nominal lengths (default burn-rate tiers, time left) and upper bounds (how far back counts must be kept).
NOMINAL_DAYS: dict[PeriodKind, int] = {PeriodKind.WEEK: 7, PeriodKind.MONTH: 30, PeriodKind.QUARTER: 90}
MAX_DAYS: dict[PeriodKind, int] = {PeriodKind.WEEK: 7, PeriodKind.MONTH: 31, PeriodKind.QUARTER: 92}


class Period(NamedTuple):
    """One calendar period: buckets start <= minute < end, and a label such as `2025-03`, `2025-Q1`, `2025-W10`."""

    start: int
    end: int
    label: str

    @property
    def start_ms(self) -> int:
        return self.start * MINUTE_MS

    @property
    def end_ms(self) -> int:
        return self.end * MINUTE_MS


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`; ValueError when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (expected an IANA name such as 'Europe/Berlin')") from exc


def local_midnight_minute(day: date, tz: ZoneInfo) -> int:
    """The first bucket of local day `day`.

    A midnight that falls in a DST gap maps (fold=0) to the instant the gap starts,
    which is the first instant of that day; a seconds offset (pre-1972 LMT) rounds up.
    """
    seconds = int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
    return -(-seconds // 60)


def _first_day(kind: PeriodKind, day: date) -> tuple[date, date, str]:
    if kind is PeriodKind.WEEK:
        first = day - timedelta(days=day.weekday())
        iso = first.isocalendar()
        return first, first + timedelta(days=7), f"{iso.year}-W{iso.week:02d}"
    if kind is PeriodKind.MONTH:
        first = day.replace(day=1)
        nxt = date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
        return first, nxt, f"{day.year}-{day.month:02d}"
    quarter = (day.month - 1) // 3
    first = date(day.year, 3 * quarter + 1, 1)
    nxt = date(day.year + 1, 1, 1) if quarter == 3 else date(day.year, 3 * quarter + 4, 1)
    return first, nxt, f"{day.year}-Q{quarter + 1}"


def period_bounds(kind: PeriodKind | Calendar | str, tz: str, instant_ms: int) -> Period:
    """The calendar period of `kind` (a default kind or an anchored calendar) in timezone `tz` that contains
    `instant_ms`."""
    if isinstance(kind, Calendar):
        return kind.period(tz, instant_ms)
    kind = PeriodKind(kind)
    zi = zone(tz)
    local = datetime.fromtimestamp(instant_ms // 1000, UTC).astimezone(zi)
    first, nxt, label = _first_day(kind, local.date())
    return Period(local_midnight_minute(first, zi), local_midnight_minute(nxt, zi), label)


def previous_period(period: Period, kind: PeriodKind | Calendar | str, tz: str) -> Period:
    """The period just before `period` (for reports on the period that just closed)."""
    return period_bounds(kind, tz, (period.start - 1) * MINUTE_MS)


# --- anchored calendars (OpenSLO `calendar.startTime` + duration) ------------------------------------

CALENDAR_UNITS = "dwMQY"
"""Units of an anchored calendar's duration: days, weeks, months, quarters, years (OpenSLO's calendar units)."""
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_NOMINAL_UNIT_DAYS = {"d": 1, "w": 7, "M": 30, "Q": 90, "Y": 365}
MAX_UNIT_DAYS = {"d": 1, "w": 7, "M": 31, "Q": 92, "Y": 366}
_CALENDAR = re.compile(r"([1-9][0-9]{0,3})([dwMQY]) from ([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2})(?::00)?")
_ANCHORED_LABEL = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})\+([1-9][0-9]{0,3})([dwMQY])")


def local_minute(moment: datetime, tz: ZoneInfo) -> int:
    """The first bucket at or after local wall-clock time `moment` (naive) in `tz`.

    A time in a DST gap maps to the transition instant (the first local time after the gap); a time that
    occurs twice, to its first occurrence (fold=0); a seconds offset (pre-1972 LMT) rounds up.
    """
    first = moment.replace(tzinfo=tz, fold=0)
    seconds = int(first.timestamp())
    back = datetime.fromtimestamp(seconds, UTC).astimezone(tz).replace(tzinfo=None)
    if back != moment.replace(microsecond=0):  # in a gap: the transition lies between the two readings
        lo = int(moment.replace(tzinfo=tz, fold=1).timestamp())
        hi = seconds
        lo, hi = min(lo, hi), max(lo, hi)
        before = datetime.fromtimestamp(lo, UTC).astimezone(tz).utcoffset()
        while hi - lo > 1:  # the first second whose offset differs from the one before the gap
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        seconds = hi
    return -(-seconds // 60)


def _add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus `months` calendar months, the day clamped to the month's last day."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last))


@dataclass(frozen=True, slots=True)
class Calendar:
    """Periods of `count` × `unit` (d, w, M, Q, Y) from local wall-clock time `anchor` (naive, whole minutes).

    Period k (any integer) starts at `anchor + k × count × unit` in local calendar arithmetic (module
    docstring); its label is its local start and duration, `2026-11-28T12:00+1w`.
    """

    count: int
    unit: str
    anchor: datetime

    def __post_init__(self) -> None:
        if self.unit not in CALENDAR_UNITS or len(self.unit) != 1:
            raise ValueError(f"a calendar unit is one of d, w, M, Q, Y, not {self.unit[:10]!r}")
        if not 1 <= self.count <= 9999:
            raise ValueError("a calendar duration counts 1 to 9999 units")
        if self.anchor.tzinfo is not None or self.anchor.second or self.anchor.microsecond:
            raise ValueError("a calendar's start time is a local wall-clock time in whole minutes")
        if not 1970 <= self.anchor.year <= 9000:
            raise ValueError("a calendar's start time lies between the years 1970 and 9000")

    @classmethod
    def parse(cls, text: str) -> Calendar:
        """`1w from 2026-11-28T12:00` (also `12:00:00`, or a space for the T); ValueError otherwise."""
        match = _CALENDAR.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text[:60]!r} is no anchored calendar such as '1w from 2026-11-28T12:00' (units d, w, M, Q, Y)"
            )
        try:
            anchor = datetime.fromisoformat(f"{match.group(3)}T{match.group(4)}")
        except ValueError:
            raise ValueError(f"{text[:60]!r}: no such date and time") from None
        return cls(int(match.group(1)), match.group(2), anchor)

    @property
    def duration(self) -> str:
        """`1w`, `2M`: OpenSLO's duration."""
        return f"{self.count}{self.unit}"

    @property
    def text(self) -> str:
        """The stored form, `1w from 2026-11-28T12:00`."""
        return f"{self.duration} from {self.anchor:%Y-%m-%dT%H:%M}"

    @property
    def value(self) -> str:
        """The stored form, as `PeriodKind.value` is a default period's: code that shows either reads `.value`."""
        return self.text

    @property
    def nominal_days(self) -> int:
        return self.count * _NOMINAL_UNIT_DAYS[self.unit]

    @property
    def max_days(self) -> int:
        return self.count * MAX_UNIT_DAYS[self.unit]

    def local_start(self, k: int) -> datetime:
        """The local wall-clock start of period k (before any DST gap adjustment)."""
        if self.unit in _MONTHS:
            return _add_months(self.anchor, k * self.count * _MONTHS[self.unit])
        return self.anchor + timedelta(days=k * self.count * (7 if self.unit == "w" else 1))

    def label(self, k: int) -> str:
        return f"{self.local_start(k):%Y-%m-%dT%H:%M}+{self.duration}"

    def nth(self, tz: str, k: int) -> Period:
        """Period k in `tz`."""
        zi = zone(tz)
        return Period(local_minute(self.local_start(k), zi), local_minute(self.local_start(k + 1), zi), self.label(k))

    def index(self, tz: str, instant_ms: int) -> int:
        """The k of the period containing `instant_ms`."""
        zi = zone(tz)
        local = datetime.fromtimestamp(instant_ms // 1000, UTC).astimezone(zi).replace(tzinfo=None)
        if self.unit in _MONTHS:
            months = (local.year - self.anchor.year) * 12 + local.month - self.anchor.month
            k = months // (self.count * _MONTHS[self.unit])
        else:
            k = (local - self.anchor).days // (self.count * (7 if self.unit == "w" else 1))
        minute = instant_ms // MINUTE_MS
        while local_minute(self.local_start(k), zi) > minute:
            k -= 1
        while local_minute(self.local_start(k + 1), zi) <= minute:
            k += 1
        return k

    def period(self, tz: str, instant_ms: int) -> Period:
        """The period containing `instant_ms` in `tz`."""
        return self.nth(tz, self.index(tz, instant_ms))


def calendar_of(text: str) -> PeriodKind | Calendar:
    """`week`, `month`, `quarter` (the default anchors) or an anchored calendar `1w from 2026-11-28T12:00`."""
    spec = text.strip()
    if spec.lower() in PeriodKind.__members__.values():
        return PeriodKind(spec.lower())
    return Calendar.parse(spec)


def is_anchored_label(label: str) -> bool:
    return _ANCHORED_LABEL.fullmatch(label.strip()) is not None


def anchored_period(label: str, calendar: Calendar, tz: str) -> Period:
    """The period of `calendar` whose label is `label` (`2026-11-28T12:00+1w`); ValueError when it has none."""
    match = _ANCHORED_LABEL.fullmatch(label.strip())
    if match is None:
        raise ValueError(f"{label[:40]!r} is no period label such as 2026-11-28T12:00+1w")
    if f"{match.group(3)}{match.group(4)}" != calendar.duration:
        raise ValueError(f"{label[:40]!r}: the periods here last {calendar.duration}")
    try:
        start = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}")
    except ValueError:
        raise ValueError(f"{label[:40]!r} names no such date and time") from None
    if not 1970 <= start.year <= 9000:
        raise ValueError(f"{label[:40]!r}: the year must lie between 1970 and 9000")
    found = calendar.period(tz, local_minute(start, zone(tz)) * MINUTE_MS)
    if found.label != label.strip():
        raise ValueError(f"{label[:40]!r} starts no period of {calendar.text} (the one there is {found.label})")
    return found
