"""Excluded time: maintenance windows and time outside business hours (docs/design.md §3.9).

Excluded time contributes neither good nor total. The granularity is the minute
bucket: a bucket is excluded when its start lies in excluded time. Each kind of
exclusion is a frozen object that yields the excluded bucket intervals
[start, end) (minutes since the epoch) within a range; `excluded_intervals`
merges several of them, `included_intervals` is the complement.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Protocol

from dateutil.rrule import rrule, rruleset, rrulestr

from shared.budget.periods import zone
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY

EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
EPOCH_DATE = date(1970, 1, 1)
# Offsets are sampled this often when looking for DST changes; two changes closer than this are not seen.
OFFSET_PROBE_MINUTES = 6 * 60

RULE_LOOKAHEAD_SECONDS = 86_400

# Input bounds of a recurring maintenance rule (the api answers 422 past them; see README "Limits").
# Occurrences are generated from DTSTART on, so the rate, the start and the filters bound the work.
MAX_RULE_LENGTH = 1000
EARLIEST_DTSTART_YEAR = 2000
LATEST_DTSTART_YEAR = 9000
MAX_RULE_INTERVAL = 1000
ALLOWED_FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# BYSETPOS, BYYEARDAY and BYWEEKNO can describe rules that never occur, which dateutil only finds out by
# walking day by day to the year 9999 (seconds of work); they are refused.
ALLOWED_RULE_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"}
)
ALLOWED_RULE_LINES = ("DTSTART", "RRULE", "RDATE", "EXDATE")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ORDINAL = re.compile(r"^([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_TZID = re.compile(r"TZID=([^:;\s]*)", re.IGNORECASE)
_DTSTART_YEAR = re.compile(r"^DTSTART[^:]*:([0-9]{4})", re.MULTILINE | re.IGNORECASE)

Interval = tuple[int, int]


class ExcludedTime(Protocol):
    def excluded(self, start: int, end: int) -> Iterable[Interval]:
        """Excluded bucket intervals that overlap [start, end), clipped to it (any order, may overlap)."""
        ...


def _ceil_minute(seconds: float) -> int:
    return -int(-seconds // 60)


def _clip(a: int, b: int, start: int, end: int) -> Interval | None:
    a, b = max(a, start), min(b, end)
    return (a, b) if a < b else None


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, non-adjacent intervals covering the same minutes."""
    merged: list[list[int]] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def excluded_intervals(exclusions: Iterable[ExcludedTime], start: int, end: int) -> list[Interval]:
    """All excluded bucket intervals within [start, end), merged and sorted."""
    return merge_intervals(i for ex in exclusions for i in ex.excluded(start, end))


def included_intervals(start: int, end: int, excluded: Sequence[Interval]) -> list[Interval]:
    """The parts of [start, end) outside the merged, sorted `excluded` intervals."""
    out: list[Interval] = []
    cursor = start
    for a, b in excluded:
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        out.append((cursor, end))
    return out


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A one-off maintenance window [start_ms, end_ms)."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError("a maintenance window must end after it starts")

    def excluded(self, start: int, end: int) -> Iterator[Interval]:
        clipped = _clip(-(-self.start_ms // MINUTE_MS), -(-self.end_ms // MINUTE_MS), start, end)
        if clipped:
            yield clipped


_NAIVE_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})(?![\dZz])")
_NAIVE_DTSTART = re.compile(r"^DTSTART:(\d{8}T\d{6})\s*$", re.MULTILINE | re.IGNORECASE)


@cache
def iana_zones() -> frozenset[str]:
    """The zone names of the tzdata package (the same on every host), without its `Factory` placeholder."""
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


def _ints(values: str, what: str) -> list[int]:
    try:
        return [int(v) for v in values.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list of integers") from None


def _check_rrule(parts: dict[str, str]) -> None:
    """Refuse what would occur more often than hourly, never occur, or overflow."""
    unknown = sorted(set(parts) - ALLOWED_RULE_PARTS)
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not supported (allowed: {', '.join(sorted(ALLOWED_RULE_PARTS))})")
    freq = parts.get("FREQ", "")
    if freq not in ALLOWED_FREQUENCIES:
        raise ValueError(
            f"FREQ={freq[:20]} is not allowed: maintenance recurs at most hourly "
            f"(FREQ={', '.join(ALLOWED_FREQUENCIES)})"
        )
    for part in ("BYMINUTE", "BYSECOND"):
        if part in parts and len(parts[part].split(",")) > 1:
            raise ValueError(f"{part} takes one value: several would recur more often than hourly")
    if "INTERVAL" in parts:
        (interval,) = _ints(parts["INTERVAL"], "INTERVAL")[:1] or [0]
        if not 1 <= interval <= MAX_RULE_INTERVAL:
            raise ValueError(f"INTERVAL must lie in 1..{MAX_RULE_INTERVAL}")
    months = _ints(parts["BYMONTH"], "BYMONTH") if "BYMONTH" in parts else list(range(1, 13))
    if any(not 1 <= m <= 12 for m in months):
        raise ValueError("BYMONTH values lie in 1..12")
    if "BYMONTHDAY" in parts:
        days = _ints(parts["BYMONTHDAY"], "BYMONTHDAY")
        if not any(0 < abs(d) <= _MONTH_DAYS[m - 1] for m in months for d in days):
            raise ValueError("no BYMONTHDAY exists in the months of the rule: it would never occur")
    for day in parts.get("BYDAY", "").split(",") if "BYDAY" in parts else ():
        match = _ORDINAL.match(day.strip().upper())
        if match is None:
            raise ValueError(f"invalid BYDAY value {day[:20]!r}")
        limit = 53 if freq == "YEARLY" and "BYMONTH" not in parts else 5
        if match.group(1) is not None and not 0 < abs(int(match.group(1))) <= limit:
            raise ValueError(f"BYDAY ordinals lie in 1..{limit} (or -{limit}..-1) here: {day[:20]!r} never occurs")


def check_rule_text(text: str) -> None:
    """Bounds on a rule's text before dateutil sees it: its length, lines, frequency and filters."""
    if len(text) > MAX_RULE_LENGTH:
        raise ValueError(f"a recurrence rule has at most {MAX_RULE_LENGTH} characters")
    rrules = 0
    for line in text.strip().splitlines():
        name = re.split(r"[;:]", line.strip(), maxsplit=1)[0].upper()
        if name not in ALLOWED_RULE_LINES:
            raise ValueError(f"line {line[:30]!r}: only {', '.join(ALLOWED_RULE_LINES)} lines are supported")
        if name == "RRULE":
            rrules += 1
            body = line.split(":", 1)[1] if ":" in line else ""
            parts = dict(p.partition("=")[::2] for p in body.strip().upper().split(";") if p)
            _check_rrule(parts)
    if rrules > 1:
        raise ValueError("a maintenance window takes one RRULE (add another maintenance window for another rule)")
    for name in _TZID.findall(text):
        if name not in iana_zones():
            raise ValueError(f"TZID={name[:60]} is not an IANA timezone of tzdata")
    years = [int(y) for y in _DTSTART_YEAR.findall(text)]
    if not years:
        raise ValueError("a recurring maintenance rule needs a DTSTART (e.g. 'DTSTART:20250105T020000')")
    if not EARLIEST_DTSTART_YEAR <= years[0] <= LATEST_DTSTART_YEAR:
        raise ValueError(f"DTSTART must lie in the years {EARLIEST_DTSTART_YEAR}..{LATEST_DTSTART_YEAR}")


def parse_rule(text: str, timezone: str) -> rrule | rruleset:
    """An iCalendar recurrence (`DTSTART:...` + `RRULE:...` lines); a DTSTART without zone is local to `timezone`."""
    if "DTSTART" not in text.upper():
        raise ValueError("a recurring maintenance rule needs a DTSTART (e.g. 'DTSTART:20250105T020000')")
    try:
        check_rule_text(text)
    except ValueError as exc:
        raise ValueError(f"invalid recurrence rule: {exc}") from None
    tz = zone(timezone)
    local = _NAIVE_DTSTART.sub(lambda m: f"DTSTART;TZID={timezone}:{m.group(1)}", text.strip())

    def until_utc(m: re.Match[str]) -> str:
        # RFC 5545 wants UNTIL in UTC when DTSTART has a zone; a floating UNTIL is read as local time.
        instant = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=tz).astimezone(UTC)
        return f"UNTIL={instant:%Y%m%dT%H%M%S}Z"

    try:
        local = _NAIVE_UNTIL.sub(until_utc, local)
        return rrulestr(local, tzids=zone, cache=True)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ValueError(f"invalid recurrence rule {text[:200]!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RecurringMaintenance:
    """A maintenance window of `duration_minutes` (elapsed time) at every occurrence of an iCalendar rule.

    `rule` holds `DTSTART` and `RRULE` lines, e.g. "DTSTART:20250105T020000\\nRRULE:FREQ=WEEKLY;BYDAY=SU";
    occurrences follow the wall clock of `timezone` (02:00 local stays 02:00 local across DST).
    """

    rule: str
    duration_minutes: int
    timezone: str = "UTC"
    occurrences: rrule | rruleset = field(init=False, repr=False, compare=False)
    # Occurrence instants (epoch seconds) generated so far, ascending: a memo, so a range query is a bisection
    # instead of a walk from DTSTART. Deterministic, so the object stays a pure value.
    _seen: list[float] = field(init=False, repr=False, compare=False)
    _rest: Iterator[datetime] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.duration_minutes <= 0:
            raise ValueError("a recurring maintenance window needs a positive duration")
        occurrences = parse_rule(self.rule, self.timezone)
        object.__setattr__(self, "occurrences", occurrences)
        object.__setattr__(self, "_seen", [])
        object.__setattr__(self, "_rest", iter(occurrences))

    def _until(self, seconds: float) -> list[float]:
        """Every occurrence instant up to `seconds`, sorted (with more after it, for an infinite rule)."""
        seen = self._seen
        # Occurrences come in wall-clock order; a wall time in a DST gap can map to an instant a little before
        # its predecessor's, so keep the list sorted and generate a day past the instant asked for.
        while not seen or seen[-1] < seconds + RULE_LOOKAHEAD_SECONDS:
            nxt = next(self._rest, None)
            if nxt is None:
                break
            bisect.insort(seen, nxt.timestamp())
        return seen

    def excluded(self, start: int, end: int) -> Iterator[Interval]:
        duration = self.duration_minutes * 60
        seen = self._until(end * 60)
        first = bisect.bisect_left(seen, start * 60 - duration)
        for begin in seen[first : bisect.bisect_left(seen, end * 60)]:
            clipped = _clip(_ceil_minute(begin), _ceil_minute(begin + duration), start, end)
            if clipped:
                yield clipped


def occurrences_in_first_days(rule: RecurringMaintenance, days: int, limit: int) -> int:
    """How many times `rule` occurs in the `days` days from its first occurrence; counting stops past `limit`."""
    occurrences = iter(rule.occurrences)
    first = next(occurrences, None)
    if first is None:
        return 0
    end = first.timestamp() + days * 86_400
    count = 1
    for occurrence in occurrences:
        if occurrence.timestamp() >= end or count > limit:
            break
        count += 1
    return count


def _parse_clock(text: str) -> int:
    match = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})", text.strip())
    if not match:
        raise ValueError(f"invalid time of day {text!r} (expected HH:MM)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes >= 60 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"invalid time of day {text!r} (00:00 to 24:00)")
    return hours * 60 + minutes


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Weekly opening hours in `timezone` plus holiday dates; everything else is excluded time.

    `hours` holds (weekday Monday=0, open minute of day, close minute of day) with open < close <= 1440;
    a minute is business time when its local wall-clock date is no holiday and its local time of day
    lies in one of that weekday's [open, close) spans.
    """

    timezone: str
    hours: tuple[tuple[int, int, int], ...]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        zone(self.timezone)
        for weekday, opens, closes in self.hours:
            if not 0 <= weekday <= 6 or not 0 <= opens < closes <= MINUTES_PER_DAY:
                raise ValueError(f"invalid business hours span {(weekday, opens, closes)!r}")

    @classmethod
    def parse(
        cls,
        timezone: str,
        weekly: Mapping[str, str | Sequence[str]],
        holidays: Iterable[str | date] = (),
    ) -> BusinessHours:
        """From {"mon": "09:00-17:00", "tue": ["09:00-12:00", "13:00-17:00"], ...} and ISO holiday dates."""
        spans: list[tuple[int, int, int]] = []
        for name, value in weekly.items():
            key = name.strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"unknown weekday {name!r} (expected one of {', '.join(WEEKDAYS)})")
            for span in [value] if isinstance(value, str) else value:
                opens, sep, closes = span.partition("-")
                if not sep:
                    raise ValueError(f"invalid business hours {span!r} (expected HH:MM-HH:MM)")
                spans.append((WEEKDAYS.index(key), _parse_clock(opens), _parse_clock(closes)))
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        return cls(timezone, tuple(sorted(spans)), days)

    def _offset_segments(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """[a, b) pieces of [start, end) with a constant UTC offset (minutes), found by probing and bisection."""
        tz = zone(self.timezone)

        def offset(minute: int) -> int:
            delta = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz).utcoffset()
            return int(delta.total_seconds()) // 60 if delta is not None else 0

        segments: list[tuple[int, int, int]] = []
        seg_start, seg_offset = start, offset(start)
        probe = start
        while probe < end - 1:
            nxt = min(probe + OFFSET_PROBE_MINUTES, end - 1)
            if offset(nxt) == seg_offset:
                probe = nxt
                continue
            lo, hi = probe, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == seg_offset:
                    lo = mid
                else:
                    hi = mid
            segments.append((seg_start, hi, seg_offset))
            seg_start, seg_offset, probe = hi, offset(hi), hi
        segments.append((seg_start, end, seg_offset))
        return segments

    def business_intervals(self, start: int, end: int) -> list[Interval]:
        """Business-time bucket intervals within [start, end), merged and sorted."""
        if start >= end:
            return []
        by_weekday: dict[int, list[tuple[int, int]]] = {}
        for weekday, opens, closes in self.hours:
            by_weekday.setdefault(weekday, []).append((opens, closes))
        out: list[Interval] = []
        for a, b, off in self._offset_segments(start, end):
            # In this piece local wall-clock minute = utc minute + off, so business hours are plain shifts.
            for day in range((a + off) // MINUTES_PER_DAY, (b - 1 + off) // MINUTES_PER_DAY + 1):
                spans = by_weekday.get((day + EPOCH_WEEKDAY) % 7)
                if not spans or EPOCH_DATE + timedelta(days=day) in self.holidays:
                    continue
                for opens, closes in spans:
                    clipped = _clip(day * MINUTES_PER_DAY + opens - off, day * MINUTES_PER_DAY + closes - off, a, b)
                    if clipped:
                        out.append(clipped)
        return merge_intervals(out)

    def excluded(self, start: int, end: int) -> list[Interval]:
        return included_intervals(start, end, self.business_intervals(start, end))
