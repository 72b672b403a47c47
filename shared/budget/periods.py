"""Calendar periods (week, month, quarter) in an IANA timezone, as ranges of epoch-aligned minute buckets.

A period starts at local midnight of its first day (Monday for a week), converted to
UTC; so a month in Europe/Berlin that contains the March change is an hour shorter
than its days suggest. Every IANA offset in use since 1972 is a whole number of
minutes, so period boundaries fall on bucket boundaries (docs/design.md §3.6, §3.7).
"""

from __future__ import annotations

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


def period_bounds(kind: PeriodKind | str, tz: str, instant_ms: int) -> Period:
    """The calendar period of `kind` in timezone `tz` that contains `instant_ms`."""
    kind = PeriodKind(kind)
    zi = zone(tz)
    local = datetime.fromtimestamp(instant_ms // 1000, UTC).astimezone(zi)
    first, nxt, label = _first_day(kind, local.date())
    return Period(local_midnight_minute(first, zi), local_midnight_minute(nxt, zi), label)


def previous_period(period: Period, kind: PeriodKind | str, tz: str) -> Period:
    """The period just before `period` (for reports on the period that just closed)."""
    return period_bounds(kind, tz, (period.start - 1) * MINUTE_MS)
