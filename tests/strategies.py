"""Shared hypothesis strategies for the tests, and the reference budget model they are checked against.

`cases()` draws an objective's terms (rolling or DST-crossing calendar windows, ratio or threshold
indicators, occurrences or timeslices, label matchers, maintenance and business-hours exclusions,
extra burn-rate tiers), an evaluation instant near a DST change or period start, and a list of raw
measurements as senders post them.

`reference(case)` recomputes the evaluation from that raw list in the plainest possible way: for each
measurement it asks whether its minute lies in the window (by comparing local calendar dates, not by
computing period bounds) and whether that minute is excluded (by looking at the wall clock or the rule's
latest occurrence), with per-minute loops and no roll-ups. The code under test (SeriesCounts roll-ups,
`evaluate`'s interval arithmetic and prefix sums, the evaluator's Engine) must agree with it.

Test modules import from here, never from each other.
"""

from __future__ import annotations

import calendar as calendar_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from shared.budget import (
    Budgeting,
    BurnRateTier,
    BusinessHours,
    CalendarWindow,
    Comparison,
    Counts,
    Evaluation,
    ExcludedTime,
    MaintenanceWindow,
    ObjectiveTerms,
    PeriodKind,
    RecurringMaintenance,
    RollingWindow,
    SeriesCounts,
    Severity,
    ThresholdRule,
    TierReading,
    Window,
    classify,
    default_tiers_for,
    matches,
)
from shared.budget.periods import Calendar

MINUTE_MS = 60_000
DAY = 24 * 60

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # half-hour DST shift
    "America/Santiago",  # changes at midnight
    "America/Asuncion",  # 2023-10-01 began at 01:00: a month starting in a DST gap
    "Asia/Kolkata",  # +05:30, no DST
    "UTC",
]
# Instants near DST changes and period starts, in ms.
ANCHORS = [
    int(datetime.fromisoformat(t).timestamp() * 1000)
    for t in (
        "2025-03-30T01:00:00+00:00",
        "2025-10-26T01:00:00+00:00",
        "2025-03-09T07:00:00+00:00",
        "2025-11-02T06:00:00+00:00",
        "2025-04-05T16:00:00+00:00",
        "2025-10-04T16:00:00+00:00",
        "2024-09-08T04:00:00+00:00",
        "2023-10-01T04:00:00+00:00",
        "2025-04-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    )
]
LABEL_SETS: list[dict[str, str]] = [{}, {"region": "eu"}, {"region": "us"}, {"region": "eu", "tier": "gold"}]
MATCHERS: list[tuple[tuple[str, str], ...]] = [(), (("region", "eu"),), (("region", "eu"), ("tier", "gold"))]
RULES = [
    "DTSTART:{start}\nRRULE:FREQ=DAILY",
    "DTSTART:{start}\nRRULE:FREQ=WEEKLY;BYDAY=SU,WE",
    "DTSTART:{start}\nRRULE:FREQ=HOURLY;INTERVAL=7",
    "DTSTART:{start}\nRRULE:FREQ=MONTHLY;BYMONTHDAY=1,15",
]
NOMINAL_DAYS = {PeriodKind.WEEK: 7, PeriodKind.MONTH: 30, PeriodKind.QUARTER: 90}
CALENDAR_DAYS = {"d": 1, "w": 7, "M": 30, "Q": 90, "Y": 365}
WALL_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)
"""1970-01-01 00:00 as a wall-clock (naive) time: anchored calendars' start times are wall-clock times."""


def ref_nominal_start(cal: Calendar, k: int) -> datetime:
    """The local wall-clock start of an anchored calendar's period k: anchor + k × duration, the plain way."""
    if cal.unit in "dw":
        return cal.anchor + timedelta(days=k * cal.count * (7 if cal.unit == "w" else 1))
    months = cal.anchor.month - 1 + k * cal.count * {"M": 1, "Q": 3, "Y": 12}[cal.unit]
    year, month = cal.anchor.year + months // 12, months % 12 + 1
    return cal.anchor.replace(
        year=year, month=month, day=min(cal.anchor.day, calendar_module.monthrange(year, month)[1])
    )


@lru_cache(maxsize=4096)
def ref_start_minute(cal: Calendar, k: int, tz: str) -> int:
    """The first minute whose local wall-clock time is at or after period k's nominal start (so a start in a
    DST gap is the transition, and one that occurs twice its first occurrence), by scanning minutes."""
    nominal = ref_nominal_start(cal, k)
    guess = int((nominal - WALL_EPOCH).total_seconds()) // 60
    for minute in range(guess - 15 * 60, guess + 15 * 60):
        if local(minute, tz).replace(tzinfo=None) >= nominal:
            return minute
    raise AssertionError("no offset is more than 15 h")


def ref_calendar_index(cal: Calendar, minute: int, tz: str) -> int:
    """The k whose [start_k, start_k+1) holds `minute`, by walking k."""
    k = (minute // DAY - int((cal.anchor - WALL_EPOCH).days)) // (cal.count * CALENDAR_DAYS[cal.unit])
    while ref_start_minute(cal, k, tz) > minute:
        k -= 1
    while ref_start_minute(cal, k + 1, tz) <= minute:
        k += 1
    return k


CALENDARS = st.builds(
    Calendar,
    st.sampled_from([1, 2, 3]),
    st.sampled_from(list("dwMQ")),
    st.builds(
        lambda day, minute: WALL_EPOCH.replace(year=2020) + timedelta(days=day, minutes=minute),
        st.integers(0, 8 * 365),
        st.sampled_from([0, 30, 60, 90, 120, 150, 180, 12 * 60, 23 * 60 + 59]),
    ),
)
"""Anchored calendars: every unit but Y (whose periods outlast what the cases measure), start times at and
around the hours DST changes happen."""


@dataclass(frozen=True)
class Raw:
    """One measurement as a sender would post it."""

    timestamp_ms: int
    labels: dict[str, str]
    good: int = 0
    total: int = 0
    value: float | None = None
    count: int = 0


@dataclass(frozen=True)
class Case:
    terms: ObjectiveTerms
    now_ms: int
    measurements: list[Raw]


@st.composite
def instants(draw: st.DrawFn) -> int:
    return draw(st.sampled_from(ANCHORS)) + draw(st.integers(-4 * DAY * MINUTE_MS, 4 * DAY * MINUTE_MS))


@st.composite
def windows(draw: st.DrawFn, tz: str) -> Window:
    if draw(st.booleans()):
        if draw(st.booleans()):
            return CalendarWindow(draw(CALENDARS), tz)
        return CalendarWindow(draw(st.sampled_from(list(PeriodKind))), tz)
    minutes = draw(st.one_of(st.sampled_from([1, 7, 60, DAY, 7 * DAY, 30 * DAY]), st.integers(1, 40 * DAY)))
    return RollingWindow(minutes)


@st.composite
def exclusions(draw: st.DrawFn, tz: str, now_ms: int) -> tuple[ExcludedTime, ...]:
    out: list[ExcludedTime] = []
    if draw(st.booleans()):
        start = now_ms - draw(st.integers(-DAY * MINUTE_MS, 40 * DAY * MINUTE_MS))
        out.append(MaintenanceWindow(start, start + draw(st.integers(1, 3 * DAY * MINUTE_MS))))
    if draw(st.booleans()):
        first = datetime.fromtimestamp(now_ms // 1000, UTC) - timedelta(days=draw(st.integers(0, 100)))
        dtstart = f"{first:%Y%m%d}T{draw(st.integers(0, 23)):02d}{draw(st.sampled_from([0, 30, 59])):02d}00"
        rule = draw(st.sampled_from(RULES)).format(start=dtstart)
        out.append(RecurringMaintenance(rule, draw(st.integers(1, 600)), tz))
    if draw(st.booleans()):
        spans = draw(
            st.lists(
                st.tuples(st.integers(0, 6), st.integers(0, DAY - 1), st.integers(1, DAY)).map(
                    lambda s: (s[0], min(s[1], s[2] - 1) if s[1] >= s[2] else s[1], s[2])
                ),
                max_size=8,
            )
        )
        today = datetime.fromtimestamp(now_ms // 1000, UTC).date()
        holidays = draw(st.frozensets(st.integers(-40, 2).map(lambda d: today + timedelta(days=d)), max_size=4))
        out.append(BusinessHours(tz, tuple(spans), holidays))
    return tuple(out)


@st.composite
def measurements(draw: st.DrawFn, now_ms: int, threshold: bool) -> list[Raw]:
    out = []
    for _ in range(draw(st.integers(0, 40))):
        scale = draw(st.sampled_from([5, 70, 400, 1_500, 6_000, 50_000, 140_000]))
        minute = now_ms // MINUTE_MS - draw(st.integers(-3, scale))
        ts = minute * MINUTE_MS + draw(st.integers(0, MINUTE_MS - 1))
        labels = draw(st.sampled_from(LABEL_SETS))
        if threshold:
            value = draw(st.sampled_from([0.0, 99.5, 100.0, 100.5, 250.0]))
            out.append(Raw(ts, labels, value=value, count=draw(st.integers(0, 5))))
        else:
            total = draw(st.integers(0, 20))
            bad = min(total, draw(st.sampled_from([0, 0, 0, 1, 2, total])))  # mostly good, as in life
            out.append(Raw(ts, labels, good=total - bad, total=total))
    return out


@st.composite
def cases(draw: st.DrawFn) -> Case:
    tz = draw(st.sampled_from(ZONES))
    now_ms = draw(instants())
    window = draw(windows(tz))
    tiers = default_tiers_for(window)
    if draw(st.booleans()):
        long = draw(st.integers(1, 5_000))
        extra = BurnRateTier(
            "extra",
            Severity.PAGE,
            long,
            draw(st.integers(1, long)),
            draw(st.sampled_from([0.5, 2.0])),
            inclusive=draw(st.booleans()),
        )
        tiers = (*tiers, extra) if draw(st.booleans()) else (extra, *tiers)
    threshold = draw(st.booleans())
    budgeting = draw(st.sampled_from(list(Budgeting)))
    terms = ObjectiveTerms(
        target=draw(st.sampled_from([0.5, 0.9, 0.99, 0.999])),
        window=window,
        tiers=tiers,
        min_events=draw(st.integers(0, 20)),
        budgeting=budgeting,
        slice_minutes=draw(st.sampled_from([1, 5, 7, 60])),
        slice_target=draw(st.sampled_from([None, 0.5, 0.9, 1.0])),
        threshold=ThresholdRule(draw(st.sampled_from(list(Comparison))), 100.0) if threshold else None,
        matchers=draw(st.sampled_from(MATCHERS)),
        exclusions=draw(exclusions(tz, now_ms)),
    )
    return Case(terms, now_ms, draw(measurements(now_ms, threshold)))


# ---------------------------------------------------------------- the reference


def local(minute: int, tz: str) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC).astimezone(ZoneInfo(tz))


def period_key(kind: PeriodKind, day: date) -> tuple[int, int]:
    if kind is PeriodKind.WEEK:
        iso = day.isocalendar()
        return iso.year, iso.week
    if kind is PeriodKind.MONTH:
        return day.year, day.month
    return day.year, (day.month - 1) // 3


def is_excluded(minute: int, exclusions: tuple[ExcludedTime, ...]) -> bool:
    """Whether the bucket's start lies in excluded time, asked of each exclusion by its own definition."""
    seconds = minute * 60
    for ex in exclusions:
        if isinstance(ex, MaintenanceWindow):
            if ex.start_ms <= seconds * 1000 < ex.end_ms:
                return True
        elif isinstance(ex, RecurringMaintenance):
            last = ex.occurrences.before(datetime.fromtimestamp(seconds, UTC), inc=True)
            if last is not None and last.timestamp() <= seconds < last.timestamp() + ex.duration_minutes * 60:
                return True
        elif isinstance(ex, BusinessHours):
            wall = local(minute, ex.timezone)
            time_of_day = wall.hour * 60 + wall.minute
            open_ = wall.date() not in ex.holidays and any(
                day == wall.weekday() and opens <= time_of_day < closes for day, opens, closes in ex.hours
            )
            if not open_:
                return True
        else:
            raise AssertionError(f"unknown exclusion {ex!r}")
    return False


def reference(case: Case) -> Evaluation:
    terms, now_minute = case.terms, case.now_ms // MINUTE_MS
    end = now_minute + 1
    window = terms.window
    period_end = None

    if isinstance(window, CalendarWindow) and isinstance(window.kind, Calendar):
        anchored, tz = window.kind, window.timezone
        k = ref_calendar_index(anchored, now_minute, tz)
        start, period_end = ref_start_minute(anchored, k, tz), ref_start_minute(anchored, k + 1, tz)

        def in_window(m: int) -> bool:
            return start <= m <= now_minute

        nominal = anchored.count * CALENDAR_DAYS[anchored.unit] * DAY
    elif isinstance(window, CalendarWindow) and isinstance(window.kind, PeriodKind):
        kind = window.kind
        current = period_key(kind, local(now_minute, window.timezone).date())

        def same_period(m: int) -> bool:
            return period_key(kind, local(m, window.timezone).date()) == current

        start = now_minute
        for step in (60, 1):
            while same_period(start - step):
                start -= step
        period_end = now_minute
        for step in (60, 1):
            while same_period(period_end + step):
                period_end += step
        period_end += 1

        def in_window(m: int) -> bool:
            return m <= now_minute and same_period(m)

        nominal = NOMINAL_DAYS[kind] * DAY
    else:
        assert isinstance(window, RollingWindow)
        start = end - window.minutes
        nominal = window.minutes

        def in_window(m: int) -> bool:
            return start <= m < end

    rows = []  # (minute, good, total) of every matching measurement in included time, up to now
    for m in case.measurements:
        minute = m.timestamp_ms // MINUTE_MS
        if not matches(terms.matchers, m.labels) or minute > now_minute or is_excluded(minute, terms.exclusions):
            continue
        if terms.threshold is not None and m.value is not None:
            op, limit = terms.threshold.op, terms.threshold.value
            good = {"<": m.value < limit, "<=": m.value <= limit, ">": m.value > limit, ">=": m.value >= limit}[op]
            rows.append((minute, m.count if good else 0, m.count))
        else:
            rows.append((minute, m.good, m.total))

    def events(inside: Callable[[int], bool]) -> Counts:
        return Counts(sum(g for mi, g, _ in rows if inside(mi)), sum(t for mi, _, t in rows if inside(mi)))

    def units(inside: Callable[[int], bool]) -> Counts:
        if terms.budgeting is Budgeting.OCCURRENCES:
            return events(inside)
        size = terms.slice_minutes
        slices: dict[int, list[int]] = {}
        for mi, g, t in rows:
            if inside(mi // size * size):
                slices.setdefault(mi // size, [0, 0])
                slices[mi // size][0] += g
                slices[mi // size][1] += t
        ratio = terms.target if terms.slice_target is None else terms.slice_target
        with_data = [(g, t) for g, t in slices.values() if t > 0]
        if terms.budgeting is Budgeting.RATIO_TIMESLICES:  # each slice: its ratio in 10^-9, rounded half up
            scale = 10**9
            return Counts(
                sum(int(Fraction(g * scale, t) + Fraction(1, 2)) for g, t in with_data), len(with_data) * scale
            )
        return Counts(sum(1 for g, t in with_data if g / t >= ratio), len(with_data))

    def rate(c: Counts) -> float | None:
        return None if c.total == 0 else ((c.total - c.good) / c.total) / round(1.0 - terms.target, 12)

    def last(n: int) -> Callable[[int], bool]:
        return lambda mi: end - n <= mi < end

    readings = []
    for tier in terms.tiers:
        long_events = events(last(tier.long_minutes))
        long_rate = rate(units(last(tier.long_minutes)))
        short_rate = rate(units(last(tier.short_minutes)))
        burning = (
            (tier.severity is not Severity.PAGE or long_events.total >= terms.min_events)
            and long_rate is not None
            and short_rate is not None
            and (long_rate >= tier.factor if tier.inclusive else long_rate > tier.factor)
            and (short_rate >= tier.factor if tier.inclusive else short_rate > tier.factor)
        )
        readings.append(
            TierReading(
                tier.name,
                tier.severity,
                tier.factor,
                long_rate,
                short_rate,
                long_events.total,
                burning,
                tier.long_minutes,
            )
        )

    counts = units(in_window)
    bad = counts.total - counts.good
    consumed = 0.0 if counts.total == 0 else bad / (round(1.0 - terms.target, 12) * counts.total)
    time_left = None
    if readings:
        shortest = sorted(readings, key=lambda r: r.long_minutes)[0]
        if shortest.long_burn_rate is not None and shortest.long_burn_rate > 0 and consumed < 1.0:
            time_left = (1.0 - consumed) * nominal / shortest.long_burn_rate
            # only within the window: a rolling window's length, or until the calendar period ends
            horizon = nominal if period_end is None else (period_end * MINUTE_MS - case.now_ms) / MINUTE_MS
            if time_left > horizon:
                time_left = None
    return Evaluation(
        now_ms=case.now_ms,
        window_start=start,
        window_end=end,
        counts=counts,
        sli=None if counts.total == 0 else counts.good / counts.total,
        budget_consumed=consumed,
        burn_rate=rate(counts),
        tiers=tuple(readings),
        events=events(in_window),
        unit=terms.budgeting,
        budget_allowed=round(1.0 - terms.target, 12) * counts.total,
        time_left_minutes=time_left,
        period_end=period_end,
    )


def stream_sources(case: Case, drop: bool = True) -> list[SeriesCounts]:
    """The series the objective reads, counted as the evaluator counts them (the code under test, fed the case)."""
    terms = case.terms
    series: dict[tuple[tuple[str, str], ...], SeriesCounts] = {}
    for m in case.measurements:
        counts = Counts(m.good, m.total)
        if terms.threshold is not None and m.value is not None:
            counts = classify(terms.threshold, m.value, m.count)
        key = tuple(sorted(m.labels.items()))
        series.setdefault(key, SeriesCounts()).add(m.timestamp_ms // MINUTE_MS, counts.good, counts.total)
    if drop:
        keep = max([terms.window.max_minutes, *(t.long_minutes for t in terms.tiers)])
        for s in series.values():
            s.drop_before(case.now_ms // MINUTE_MS + 1 - keep)
    return [s for key, s in series.items() if matches(terms.matchers, key)]
