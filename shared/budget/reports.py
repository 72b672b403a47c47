"""A reporting period's judgement and report: compliance, met or missed, budget, exclusions, days, credit.

`judge_period` is THE judgement of a period: the evaluator's `accord.sla.breached`, the api's
reports and the period closer all call it, so they cannot disagree. `period_report` adds what
only a report needs (minutes excluded per reason, compliance per local day, the worst day).
Pure: the instant is an argument, counts come from a `CountSource`, money is `Decimal`.

A period is judged under the terms in force at its end: the caller passes those terms
(docs/reports.md); the target, exclusions and credit tiers here are that one set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from shared.budget.counts import Counts, minute_of
from shared.budget.credits import credit_owed
from shared.budget.evaluate import CountSource, Evaluation, Measured, _sources, _Units, judge
from shared.budget.exclusions import (
    BusinessHours,
    ExcludedTime,
    Interval,
    MaintenanceWindow,
    excluded_intervals,
    included_intervals,
    merge_intervals,
)
from shared.budget.model import CalendarWindow, ObjectiveTerms
from shared.budget.periods import (
    Calendar,
    Period,
    PeriodKind,
    anchored_period,
    is_anchored_label,
    local_midnight_minute,
    period_bounds,
    zone,
)
from shared.timeutil import MINUTE_MS, from_minute


@dataclass(frozen=True, slots=True)
class Fee:
    """What the customer pays per reporting period: the base of a credit amount (never a float)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount < 0:
            raise ValueError("a fee is a finite, non-negative Decimal")


def credit_amount(percent: float, fee: Fee | None) -> Decimal | None:
    """`percent` of the fee, rounded half-up to the cent (or the fee's own finer precision); None without a fee.

    The percent goes through its shortest decimal form (`str`), so 2.5 % is exactly 2.5/100.
    """
    if fee is None:
        return None
    exponent = min(-2, _exponent(fee.amount))
    return (fee.amount * Decimal(str(percent)) / 100).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class PeriodJudgement:
    """One objective over one reporting period (so far, when the period is still open).

    `counts` are budgeting units (events, or good slices / slices with data), excluded time
    left out; `met` is None when there were no units (no data: nothing to judge, nothing owed).
    `budget_allowed` = (1 − target) × counts.total; `budget_consumed` = counts.bad;
    `budget_remaining` = allowed − consumed (negative when overspent).
    """

    period: Period
    target: float
    start: int
    end: int
    closed: bool
    counts: Counts
    events: Counts
    compliance: float | None
    met: bool | None
    budget_allowed: float
    budget_consumed: int
    budget_remaining: float
    credit_percent: float
    credit_amount: Decimal | None
    evaluation: Evaluation


def period_terms(terms: ObjectiveTerms, kind: PeriodKind | Calendar, timezone: str) -> ObjectiveTerms:
    """The objective's terms over a reporting period: its target, budgeting and exclusions, no tiers."""
    return replace(terms, window=CalendarWindow(kind, timezone), tiers=())


def judge_period(
    terms: ObjectiveTerms,
    source: CountSource | Sequence[CountSource],
    period: Period,
    now_ms: int,
    credit_tiers: Sequence[tuple[float, float]] = (),
    fee: Fee | None = None,
) -> PeriodJudgement:
    """Judge `period` with what `source` holds at `now_ms` (the whole period once `now_ms` passed its end).

    Compliance is the SLI over the period's buckets with excluded time left out; the period is
    met when compliance >= target. The credit is the credit tiers' percent of that compliance
    and, with a fee, that percent of the fee. The same arithmetic as `evaluate` on a calendar
    window evaluated at the period's last millisecond.
    """
    end = min(minute_of(now_ms) + 1, period.end)
    start = period.start
    plain = replace(terms, tiers=())
    units, events = period_units(plain, _sources(source), start, max(start, end))
    at = min(now_ms, period.end_ms - 1)
    ev = judge(plain, Measured(at, start, max(start, end), period.end, units, events, ()))
    compliance = ev.sli
    percent = credit_owed(compliance, credit_tiers)
    return PeriodJudgement(
        period=period,
        target=terms.target,
        start=start,
        end=max(start, end),
        closed=now_ms >= period.end_ms,
        counts=units,
        events=events,
        compliance=compliance,
        met=None if compliance is None else compliance >= terms.target,
        budget_allowed=ev.budget_allowed,
        budget_consumed=units.bad,
        budget_remaining=ev.budget_left,
        credit_percent=percent,
        credit_amount=credit_amount(percent, fee),
        evaluation=ev,
    )


def period_units(terms: ObjectiveTerms, sources: Sequence[CountSource], start: int, end: int) -> tuple[Counts, Counts]:
    """(units, events) over the buckets [start, end) with the terms' excluded time left out."""
    excluded = excluded_intervals(terms.exclusions, start, end) if terms.exclusions and start < end else []
    units = _Units(terms, sources, excluded, start, end)
    events = units.events(start) if start < end else Counts(0, 0)
    return (units.units(start, events) if start < end else Counts(0, 0)), events


# --- what a report adds --------------------------------------------------------------------------


class ExclusionReason(StrEnum):
    MAINTENANCE = "maintenance"
    BEFORE_EFFECTIVE = "before_effective"
    BUSINESS_HOURS = "business_hours"


def exclusion_reason(exclusion: ExcludedTime) -> ExclusionReason:
    """Why an exclusion excludes: business hours, the time before the agreement's `effective_from`
    (shared/contract.py adds it as the window from the epoch, [0, effective_from)), or maintenance."""
    if isinstance(exclusion, BusinessHours):
        return ExclusionReason.BUSINESS_HOURS
    if isinstance(exclusion, MaintenanceWindow) and exclusion.start_ms <= 0:
        return ExclusionReason.BEFORE_EFFECTIVE
    return ExclusionReason.MAINTENANCE


def excluded_minutes(terms: ObjectiveTerms, start: int, end: int) -> dict[ExclusionReason, int]:
    """Minutes of [start, end) excluded, per reason; a minute excluded for several reasons counts once,
    under the first of maintenance, before_effective, business_hours."""
    out = dict.fromkeys(ExclusionReason, 0)
    if start >= end:
        return out
    taken: list[Interval] = []
    for reason in ExclusionReason:
        mine = excluded_intervals([e for e in terms.exclusions if exclusion_reason(e) is reason], start, end)
        fresh = [piece for a, b in mine for piece in included_intervals(a, b, taken)]
        out[reason] = sum(b - a for a, b in fresh)
        taken = merge_intervals([*taken, *mine])
    return out


@dataclass(frozen=True, slots=True)
class DayCompliance:
    """One local day of the period (the agreement's timezone): its buckets [start, end) and units."""

    day: date
    start: int
    end: int
    counts: Counts

    @property
    def compliance(self) -> float | None:
        return self.counts.good / self.counts.total if self.counts.total else None


def local_days(period: Period, timezone: str) -> list[tuple[date, int, int]]:
    """The local days of `period` as (date, first bucket, end bucket); a DST day is 23 or 25 h long."""
    tz = zone(timezone)
    first = from_minute(period.start).astimezone(tz).date()
    out: list[tuple[date, int, int]] = []
    day = first
    start = period.start
    while start < period.end:
        end = min(local_midnight_minute(day + timedelta(days=1), tz), period.end)
        out.append((day, start, end))
        day, start = day + timedelta(days=1), end
    return out


@dataclass(frozen=True, slots=True)
class PeriodReport:
    """A judgement plus what a report shows besides it."""

    judgement: PeriodJudgement
    excluded: dict[ExclusionReason, int]
    days: tuple[DayCompliance, ...]

    @property
    def worst_day(self) -> DayCompliance | None:
        """The day with the lowest compliance (the earliest of equals); None when no day had data."""
        scored = [d for d in self.days if d.compliance is not None]
        return min(scored, key=lambda d: (d.compliance, d.start), default=None)


def period_report(
    terms: ObjectiveTerms,
    source: CountSource | Sequence[CountSource],
    period: Period,
    timezone: str,
    now_ms: int,
    credit_tiers: Sequence[tuple[float, float]] = (),
    fee: Fee | None = None,
) -> PeriodReport:
    """`judge_period`, the minutes excluded per reason, and compliance per local day (days not begun are left out)."""
    judgement = judge_period(terms, source, period, now_ms, credit_tiers, fee)
    plain = replace(terms, tiers=())
    sources = _sources(source)
    days = []
    for day, start, end in local_days(period, timezone):
        end = min(end, judgement.end)
        if start >= end:
            break
        units, _ = period_units(plain, sources, start, end)
        days.append(DayCompliance(day, start, end, units))
    return PeriodReport(judgement, excluded_minutes(terms, judgement.start, judgement.end), tuple(days))


_LABEL = re.compile(r"([0-9]{4})-(?:([0-9]{2})|Q([0-9])|W([0-9]{2}))")


def parse_period(label: str, timezone: str, calendar: Calendar | None = None) -> Period:
    """`2026-11` (month), `2026-Q4` (quarter), `2026-W48` (ISO week) in `timezone`; ValueError otherwise.

    Years 1970 to 9998 (a period must start after the epoch and end before year 10000). A period of an
    anchored calendar is labelled by its local start and duration, `2026-11-28T12:00+1w`: such a label
    needs its `calendar` (from 31 January, a month period starting 28 February lasts until 31 March,
    which the label alone cannot tell) and must name one of its periods.
    """
    if is_anchored_label(label):
        if calendar is None:
            raise ValueError(f"{label[:40]!r} is a period of an anchored calendar, and none is given")
        return anchored_period(label, calendar, timezone)
    match = _LABEL.fullmatch(label.strip())
    if match is None:
        raise ValueError(f"{label[:40]!r} is no reporting period such as 2026-11, 2026-Q4 or 2026-W48")
    year = int(match.group(1))
    if not 1970 <= year <= 9998:
        raise ValueError(f"{label[:40]!r}: the year must lie between 1970 and 9998")
    month, quarter, week = match.group(2), match.group(3), match.group(4)
    try:
        if month is not None:
            kind, first = PeriodKind.MONTH, date(year, int(month), 1)
        elif quarter is not None:
            if not 1 <= int(quarter) <= 4:
                raise ValueError("quarter")
            kind, first = PeriodKind.QUARTER, date(year, 3 * int(quarter) - 2, 1)
        else:
            kind, first = PeriodKind.WEEK, date.fromisocalendar(year, int(week), 1)
    except ValueError:
        raise ValueError(f"{label[:40]!r} names no such month, quarter or week") from None
    found = period_bounds(kind, timezone, local_midnight_minute(first, zone(timezone)) * MINUTE_MS)
    return found


def period_kind(label: str) -> PeriodKind | None:
    """The kind of period a valid label names; None for an anchored calendar's label (`2026-11-28T12:00+1w`)."""
    if is_anchored_label(label):
        return None
    return PeriodKind.QUARTER if "Q" in label else PeriodKind.WEEK if "W" in label else PeriodKind.MONTH


__all__ = [
    "DayCompliance",
    "ExclusionReason",
    "Fee",
    "PeriodJudgement",
    "PeriodReport",
    "credit_amount",
    "excluded_minutes",
    "exclusion_reason",
    "judge_period",
    "local_days",
    "parse_period",
    "period_kind",
    "period_report",
    "period_terms",
    "period_units",
]
