"""The terms an objective is evaluated under: frozen domain objects, validated on construction.

Policy is data (STYLE: "Policy as data"): burn-rate tiers and budget thresholds are
tables carried by the objective, with defaults from docs/design.md §3.3–3.4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache

from shared.budget.counts import Counts
from shared.budget.exclusions import ExcludedTime
from shared.budget.periods import MAX_DAYS, NOMINAL_DAYS, Calendar, Period, PeriodKind, period_bounds, zone
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY, MINUTES_PER_HOUR, duration_ms

MAX_WINDOW_DAYS = 400
"""The longest rolling window and the longest duration anywhere in the terms (tier windows, slices,
maintenance): the same 400 days as the oldest measurement ingest accepts (ACCORD_INGEST_MAX_AGE_SECONDS)
and the history the evaluator keeps (ACCORD_EVALUATOR_MAX_AGE_MINUTES)."""
MAX_WINDOW_MINUTES = MAX_WINDOW_DAYS * MINUTES_PER_DAY


@lru_cache(maxsize=4096)
def error_budget(target: float) -> float:
    """The error budget fraction, 1 − target, rounded to 12 decimals.

    In binary floating point 1 − 0.999 is 0.0010000000000000009: without the rounding, exactly
    the allowed number of bad events would consume 0.9999999999999991 of the budget and never
    exhaust it. Targets are given with far fewer than 12 decimals. Cached: the evaluator asks
    for every objective after every record.
    """
    return round(1.0 - target, 12)


class Severity(StrEnum):
    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class BurnRateTier:
    """Fire when both windows burn faster than `factor` times the sustainable rate (at `factor` or
    faster when `inclusive`: OpenSLO's `op: gte`), and have done so for `alert_after_minutes`
    (OpenSLO's `alertAfter`; 0: at once).

    `announce_firing` / `announce_resolved` (OpenSLO's `alertWhenBreaching` / `alertWhenResolved`):
    whether the firing / resolved transitions are announced; the tier's state is tracked either way.
    """

    name: str
    severity: Severity
    long_minutes: int
    short_minutes: int
    factor: float
    alert_after_minutes: int = 0
    announce_firing: bool = True
    announce_resolved: bool = True
    inclusive: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.short_minutes <= self.long_minutes:
            raise ValueError("a burn-rate tier needs 0 < short window <= long window")
        if self.factor <= 0:
            raise ValueError("a burn-rate factor must be positive")
        if self.alert_after_minutes < 0:
            raise ValueError("alert_after cannot be negative")


# (severity, share of the budget burnt, long window in minutes): docs/design.md §3.3 / SRE Workbook table 5-8.
DEFAULT_TIER_SHARES: tuple[tuple[Severity, float, int], ...] = (
    (Severity.PAGE, 0.02, 1 * MINUTES_PER_HOUR),
    (Severity.PAGE, 0.05, 6 * MINUTES_PER_HOUR),
    (Severity.TICKET, 0.10, 1 * MINUTES_PER_DAY),
    (Severity.TICKET, 0.10, 3 * MINUTES_PER_DAY),
)

DEFAULT_BUDGET_THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0)


def tier_name(long_minutes: int) -> str:
    """`1h`, `6h`, `1d`, `3d`, `90m`: a tier's name is its long window."""
    if long_minutes % MINUTES_PER_DAY == 0:
        return f"{long_minutes // MINUTES_PER_DAY}d"
    if long_minutes % MINUTES_PER_HOUR == 0:
        return f"{long_minutes // MINUTES_PER_HOUR}h"
    return f"{long_minutes}m"


@lru_cache(maxsize=256)  # immutable tiers; the api builds the terms of every objective it reads
def default_tiers(window_minutes: int) -> tuple[BurnRateTier, ...]:
    """The default tiers for a budget window: factor = share × window / long window, unrounded."""
    return tuple(
        BurnRateTier(
            name=tier_name(long),
            severity=severity,
            long_minutes=long,
            short_minutes=max(1, long // 12),
            # The exact ratio, correctly rounded once (7 d: 7/30 = 0.2333…, not 0.233333).
            factor=float(Fraction(str(share)) * window_minutes / long),
        )
        for severity, share, long in DEFAULT_TIER_SHARES
    )


@dataclass(frozen=True, slots=True)
class RollingWindow:
    """The last `minutes` minutes, ending at the evaluation instant (current bucket included)."""

    minutes: int

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError("a rolling window must be at least one minute long")

    @property
    def label(self) -> str:
        return tier_name(self.minutes)

    @property
    def nominal_minutes(self) -> int:
        """The window's length, used for default tiers and time left."""
        return self.minutes

    @property
    def max_minutes(self) -> int:
        """How far back (in minutes) counts must be kept to evaluate this window."""
        return self.minutes


@dataclass(frozen=True, slots=True)
class CalendarWindow:
    """The current calendar period in `timezone`, so far: no extrapolation.

    `kind` is a default period (week from Monday, month, quarter: reset at local midnight of the
    period's first day) or an anchored `Calendar` (`2w from 2026-11-28T12:00`: periods of the
    duration from that local start time, periods.py). `nominal_minutes` is the nominal length
    (week 7 d, month 30 d, quarter 90 d, year 365 d, times the count), used for default tiers and
    time left; `max_minutes` bounds the longest period (use it to decide what counts to keep).
    """

    kind: PeriodKind | Calendar
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Calendar):
            object.__setattr__(self, "kind", PeriodKind(self.kind))
        zone(self.timezone)

    @property
    def label(self) -> str:
        return self.kind.text if isinstance(self.kind, Calendar) else self.kind.value

    @property
    def minutes(self) -> int:
        return self.nominal_minutes

    @property
    def nominal_minutes(self) -> int:
        days = self.kind.nominal_days if isinstance(self.kind, Calendar) else NOMINAL_DAYS[self.kind]
        return days * MINUTES_PER_DAY

    @property
    def max_minutes(self) -> int:
        # A DST change can lengthen a period by an hour; a day of slack covers any offset change.
        days = self.kind.max_days if isinstance(self.kind, Calendar) else MAX_DAYS[self.kind]
        return (days + 1) * MINUTES_PER_DAY

    def period(self, instant_ms: int) -> Period:
        return period_bounds(self.kind, self.timezone, instant_ms)


Window = RollingWindow | CalendarWindow


def _duration(text: str) -> int | None:
    """Minutes in `90m`, `6h`, `30d` (0 allowed here), None when it is no such duration (shared.timeutil)."""
    ms = duration_ms(text, "mhd")
    return None if ms is None else ms // MINUTE_MS


def _too_long(text: str, minutes: int) -> str | None:
    if minutes > MAX_WINDOW_MINUTES:
        return f"{text[:40]!r} is longer than {MAX_WINDOW_DAYS} days, the longest duration Accord keeps data for"
    return None


def parse_minutes(text: str) -> int:
    """`90m`, `6h`, `30d` to minutes (tier windows, slice lengths, maintenance durations), at most 400 days."""
    minutes = _duration(text.strip())
    if not minutes:
        raise ValueError(f"{text[:40]!r} is not a duration such as 30d, 6h or 90m")
    if (reason := _too_long(text, minutes)) is not None:
        raise ValueError(reason)
    return minutes


def parse_window(text: str, timezone: str = "UTC") -> Window:
    """`30d`, `7d`, `12h`, `90m` (rolling, 1 minute to 400 days), `month`, `quarter`, `week` (calendar), or
    an anchored calendar `2w from 2026-11-28T12:00` (units d, w, M, Q, Y; its longest period at most 400 days)."""
    spec = text.strip().lower()
    if spec in PeriodKind.__members__.values():
        return CalendarWindow(PeriodKind(spec), timezone)
    if " from " in spec:
        calendar = Calendar.parse(text)
        if calendar.max_days + 1 > MAX_WINDOW_DAYS:
            raise ValueError(
                f"invalid window {text[:60]!r}: its periods can be longer than {MAX_WINDOW_DAYS} days, "
                "the longest duration Accord keeps data for"
            )
        return CalendarWindow(calendar, timezone)
    minutes = _duration(spec)
    if minutes is None:
        raise ValueError(
            f"invalid window {text[:40]!r}: expected a rolling length such as '30d', '12h' or '90m', "
            "a calendar period: 'week', 'month' or 'quarter', or an anchored one such as '1w from 2026-11-28T12:00'"
        )
    if minutes == 0:
        raise ValueError(f"invalid window {text[:40]!r}: a rolling window must be at least one minute long")
    if (reason := _too_long(text, minutes)) is not None:
        raise ValueError(f"invalid window: {reason}")
    return RollingWindow(minutes)


def default_tiers_for(window: Window) -> tuple[BurnRateTier, ...]:
    """Default tiers for a window; a calendar window uses its nominal length (month = 30 d)."""
    return default_tiers(window.nominal_minutes)


class Budgeting(StrEnum):
    """How the budget is counted: per event; per time slice (good when its ratio >= the slice target); or
    per time slice by its success ratio (OpenSLO's RatioTimeslices: the SLI is the mean of the slices'
    ratios, each slice with data counting `SLICE_RATIO_SCALE` units of which its ratio's share is good)."""

    OCCURRENCES = "occurrences"
    TIMESLICES = "timeslices"
    RATIO_TIMESLICES = "ratio_timeslices"

    @property
    def sliced(self) -> bool:
        """Whether the budget counts time slices (Timeslices or RatioTimeslices)."""
        return self is not Budgeting.OCCURRENCES

    @property
    def unit(self) -> str:
        """What the counts count: `events`, `slices`, or `nanoslices` (RatioTimeslices: 10^-9 slice)."""
        return {"occurrences": "events", "timeslices": "slices"}.get(self.value, "nanoslices")


SLICE_RATIO_SCALE = 10**9
"""RatioTimeslices units per slice: a slice with data counts 10^9 units, good = its success ratio × 10^9
rounded half up to an integer. Sums of integers are exact in any order; the mean of the ratios is off
by at most 5 × 10^-10 (the per-slice rounding), far below any target's precision."""


class Comparison(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A threshold measurement's events are good when `measured <op> value` (the wire's `threshold.value`)."""

    op: Comparison
    value: float

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "op", Comparison(self.op))
        except ValueError:
            raise ValueError(f"invalid comparison {self.op!r} (expected <, <=, > or >=)") from None
        if not math.isfinite(self.value):
            raise ValueError("a threshold must be a finite number")

    def is_good(self, measured: float) -> bool:
        if self.op is Comparison.LT:
            return measured < self.value
        if self.op is Comparison.LE:
            return measured <= self.value
        if self.op is Comparison.GT:
            return measured > self.value
        return measured >= self.value

    @property
    def key(self) -> str:
        """A stable name for the predicate, e.g. `<=0.3`: counts of a threshold series are kept per rule."""
        return f"{self.op.value}{self.value!r}"


def classify(rule: ThresholdRule, value: float, count: int = 1) -> Counts:
    """The (good, total) a threshold measurement of `count` events at `value` contributes under `rule`."""
    if count < 0:
        raise ValueError("a measurement's count cannot be negative")
    return Counts(count if rule.is_good(value) else 0, count)


LabelSet = Mapping[str, str] | Iterable[tuple[str, str]]


def matches(matchers: LabelSet, labels: LabelSet) -> bool:
    """True when every matcher's label equals the series' label (a missing label matches nothing)."""
    have = labels if isinstance(labels, Mapping) else dict(labels)
    want = matchers.items() if isinstance(matchers, Mapping) else matchers
    return all(have.get(name) == value for name, value in want)


@dataclass(frozen=True, slots=True)
class ObjectiveTerms:
    """What an objective promises and how it alerts; no identity, no I/O.

    `exclusions` hold every excluded time of the objective (the agreement's maintenance
    windows, and its business hours for a business-hours objective). A timeslices objective
    counts slices of `slice_minutes`, good when good/total >= `slice_target` (default: `target`); a
    ratio-timeslices objective counts each slice by its ratio (`Budgeting`, `SLICE_RATIO_SCALE`).
    """

    target: float
    window: Window
    tiers: tuple[BurnRateTier, ...] = ()
    budget_thresholds: tuple[float, ...] = DEFAULT_BUDGET_THRESHOLDS
    min_events: int = 0
    budgeting: Budgeting = Budgeting.OCCURRENCES
    slice_minutes: int = 1
    slice_target: float | None = None
    threshold: ThresholdRule | None = None
    matchers: tuple[tuple[str, str], ...] = ()
    exclusions: tuple[ExcludedTime, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise ValueError("target must lie strictly between 0 and 1")
        if any(not 0 < t <= 10 for t in self.budget_thresholds):
            raise ValueError("budget-consumed thresholds must be positive fractions of the budget")
        object.__setattr__(self, "budgeting", Budgeting(self.budgeting))
        if self.slice_minutes < 1:
            raise ValueError("a time slice must be at least one minute long")
        if self.slice_target is not None and not 0 < self.slice_target <= 1:
            raise ValueError("a slice target must lie in (0, 1]")

    @property
    def budget_fraction(self) -> float:
        return error_budget(self.target)

    @property
    def good_slice_ratio(self) -> float:
        """The ratio at or above which a time slice is good."""
        return self.target if self.slice_target is None else self.slice_target

    def matches(self, labels: LabelSet) -> bool:
        """Whether a series with `labels` feeds this objective."""
        return matches(self.matchers, labels)
