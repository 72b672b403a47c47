"""Report math (shared/budget/reports.py): by table, and by hypothesis against a per-minute reference
that looks at local wall clocks and raw events only (no interval arithmetic, no period bounds)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.budget import (
    BusinessHours,
    CalendarWindow,
    MaintenanceWindow,
    ObjectiveTerms,
    PeriodKind,
    SeriesCounts,
    evaluate,
    period_bounds,
)
from shared.budget.reports import (
    ExclusionReason,
    Fee,
    credit_amount,
    judge_period,
    local_days,
    parse_period,
    period_report,
)

MINUTE_MS = 60_000
BERLIN = "Europe/Berlin"
TZ = ZoneInfo(BERLIN)
# 2026-W13 (Mon 23 March .. Mon 30 March, Berlin) holds the spring change: 167 hours long.
WEEK = parse_period("2026-W13", BERLIN)
HOURS = BusinessHours.parse(BERLIN, {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")}, ["2026-03-27"])


def wall(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Berlin wall-clock instant."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def minute(instant: datetime) -> int:
    return int(instant.timestamp()) // 60


# ---------------------------------------------------------------- tables


def test_period_labels_parse_in_the_agreements_timezone() -> None:
    month = parse_period("2026-10", BERLIN)
    assert month == period_bounds(PeriodKind.MONTH, BERLIN, month.start_ms)
    assert month.label == "2026-10"
    assert month.end - month.start == 31 * 1440 + 60  # the autumn change: one hour longer
    assert parse_period("2026-Q4", "UTC").label == "2026-Q4"
    assert WEEK.label == "2026-W13"
    assert WEEK.end - WEEK.start == 7 * 1440 - 60
    assert parse_period("2026-W53", "UTC").label == "2026-W53"  # 2026 has 53 ISO weeks


@pytest.mark.parametrize(
    "label",
    [
        "",
        "2026",
        "2026-13",
        "2026-00",
        "2026-Q5",
        "2026-Q0",
        "2025-W53",
        "1969-01",
        "9999-12",
        "99999-01",
        "2026-1",
        "2026-11; drop",
        "２026-11",
    ],
)
def test_bad_period_labels_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match=r"period|year|month"):
        parse_period(label, BERLIN)


@pytest.mark.parametrize(
    ("fee", "percent", "owed"),
    [
        ("1000.00", 10.0, "100.00"),
        ("999", 2.5, "24.98"),  # 24.975, half up to the cent
        ("1200", 0.0, "0.00"),
        ("0.333", 50.0, "0.167"),  # the fee's own finer precision is kept (0.1665 half up)
        ("12345678901234567890.10", 25.0, "3086419725308641972.53"),  # no float anywhere (…2.525 half up)
    ],
)
def test_credit_amount_is_decimal_percent_of_the_fee(fee: str, percent: float, owed: str) -> None:
    amount = credit_amount(percent, Fee(Decimal(fee), "EUR"))
    assert amount == Decimal(owed)
    assert str(amount) == owed


def test_no_fee_no_amount_and_fees_are_decimals() -> None:
    assert credit_amount(10.0, None) is None
    with pytest.raises(ValueError, match="fee"):
        Fee(Decimal("-1"), "EUR")
    with pytest.raises(ValueError, match="fee"):
        Fee(Decimal("NaN"), "EUR")


def test_local_days_follow_the_wall_clock_across_dst() -> None:
    days = local_days(WEEK, BERLIN)
    assert [d for d, _, _ in days] == [date(2026, 3, 23) + timedelta(days=i) for i in range(7)]
    lengths = [b - a for _, a, b in days]
    assert lengths == [1440] * 6 + [1380]  # Sunday 29 March has 23 hours
    assert days[0][1] == WEEK.start
    assert days[-1][2] == WEEK.end


def test_a_worked_week() -> None:
    """Hand computation: 10 events a minute on Tuesday 10:00-10:59 (Berlin), 3 bad at 10:30;
    a maintenance window 10:30-11:00 local removes them; business hours exclude the rest of the week."""
    counts = SeriesCounts()
    for m in range(minute(wall(2026, 3, 24, 10)), minute(wall(2026, 3, 24, 11))):
        counts.add(m, 10, 10)
    bad_minute = minute(wall(2026, 3, 24, 10, 30))
    counts.add(bad_minute, 0, 3)  # 3 bad events inside maintenance
    counts.add(minute(wall(2026, 3, 25, 9)), 0, 4)  # 4 bad events Wednesday 09:00, in business hours
    counts.add(minute(wall(2026, 3, 25, 20)), 0, 100)  # outside business hours: excluded
    maintenance = MaintenanceWindow(bad_minute * MINUTE_MS, minute(wall(2026, 3, 24, 11)) * MINUTE_MS)
    terms = ObjectiveTerms(target=0.99, window=CalendarWindow(PeriodKind.WEEK, BERLIN), exclusions=(maintenance, HOURS))
    report = period_report(
        terms, counts, WEEK, BERLIN, WEEK.end_ms + 1, [(0.99, 10.0), (0.95, 25.0)], Fee(Decimal("500.00"), "EUR")
    )
    j = report.judgement
    # counted: 30 minutes × 10 good (10:00-10:29) + 4 bad Wednesday = 300 good of 304
    assert (j.counts.good, j.counts.total) == (300, 304)
    assert j.compliance == 300 / 304  # 0.98684…
    assert j.met is False
    assert j.closed
    assert j.budget_allowed == pytest.approx(0.01 * 304)
    assert j.budget_consumed == 4
    assert j.budget_remaining == pytest.approx(3.04 - 4)
    assert j.credit_percent == 10.0  # below 0.99, not below 0.95
    assert j.credit_amount == Decimal("50.00")
    # minutes: maintenance 30; business hours: 4 working days × 8 h (Friday 27 is a holiday) = 1920 open,
    # 30 of them in maintenance; the week is 10020 minutes long: 10020 - 1920 = 8100 outside business hours.
    assert report.excluded == {
        ExclusionReason.MAINTENANCE: 30,
        ExclusionReason.BEFORE_EFFECTIVE: 0,
        ExclusionReason.BUSINESS_HOURS: 8100,
    }
    assert [d.compliance for d in report.days] == [None, 1.0, 0.0, None, None, None, None]
    assert report.worst_day is not None
    assert report.worst_day.day == date(2026, 3, 25)


def test_the_evaluators_calendar_judgement_is_judge_period() -> None:
    counts = SeriesCounts()
    counts.add(WEEK.start + 5, 7, 9)
    terms = ObjectiveTerms(target=0.9, window=CalendarWindow(PeriodKind.WEEK, BERLIN))
    ev = evaluate(terms, counts, WEEK.end_ms - 1)
    j = judge_period(terms, counts, WEEK, WEEK.end_ms - 1)
    assert j.evaluation == ev
    assert j.met is False
    assert j.compliance == 7 / 9


def test_an_open_period_counts_so_far_and_no_data_is_not_judged() -> None:
    terms = ObjectiveTerms(target=0.9, window=CalendarWindow(PeriodKind.WEEK, BERLIN))
    j = judge_period(terms, SeriesCounts(), WEEK, WEEK.start_ms + 3 * 86_400_000, [(0.9, 5.0)], None)
    assert j.met is None
    assert j.compliance is None
    assert j.credit_percent == 0.0
    assert not j.closed
    assert j.end == WEEK.start + 3 * 1440 + 1
    report = period_report(terms, SeriesCounts(), WEEK, BERLIN, WEEK.start_ms + 3 * 86_400_000)
    assert len(report.days) == 4
    assert report.worst_day is None


# ---------------------------------------------------------------- against a per-minute reference


def local(m: int) -> datetime:
    return datetime.fromtimestamp(m * 60, UTC).astimezone(TZ)


def business(m: int) -> bool:
    t = local(m)
    return t.weekday() < 5 and t.date() != date(2026, 3, 27) and 9 <= t.hour < 17


events = st.lists(
    st.tuples(st.integers(WEEK.start - 120, WEEK.end + 120), st.integers(0, 5), st.integers(0, 5)), max_size=40
)


@given(events, st.integers(WEEK.start, WEEK.end), st.integers(0, 600), st.booleans(), st.sampled_from([0.5, 0.9, 0.99]))
def test_report_equals_a_per_minute_reference(
    raw: list[tuple[int, int, int]], maint_start: int, maint_len: int, with_hours: bool, target: float
) -> None:
    counts = SeriesCounts()
    for m, good, extra in raw:
        counts.add(m, good, good + extra)
    exclusions: tuple[MaintenanceWindow | BusinessHours, ...] = ()
    if maint_len:
        exclusions = (MaintenanceWindow(maint_start * MINUTE_MS, (maint_start + maint_len) * MINUTE_MS),)
    if with_hours:
        exclusions = (*exclusions, HOURS)
    terms = ObjectiveTerms(target=target, window=CalendarWindow(PeriodKind.WEEK, BERLIN), exclusions=exclusions)
    tiers = [(target, 10.0), (target / 2, 50.0)]
    report = period_report(terms, counts, WEEK, BERLIN, WEEK.end_ms + 5, tiers, Fee(Decimal("100"), "EUR"))

    def in_maintenance(m: int) -> bool:
        return bool(maint_len) and maint_start <= m < maint_start + maint_len

    def counted(m: int) -> bool:
        in_week = date(2026, 3, 23) <= local(m).date() < date(2026, 3, 30)
        return in_week and not in_maintenance(m) and (not with_hours or business(m))

    good = sum(g for m, g, _ in raw if counted(m))
    total = sum(g + e for m, g, e in raw if counted(m))
    j = report.judgement
    assert (j.counts.good, j.counts.total) == (good, total)
    expected = good / total if total else None
    assert j.compliance == expected
    assert j.met == (None if expected is None else expected >= target)
    credit = 0.0 if expected is None else 50.0 if expected < target / 2 else 10.0 if expected < target else 0.0
    assert j.credit_percent == credit
    assert j.credit_amount == Decimal(str(credit)).quantize(Decimal("0.01"))
    # per local day, and the days add up to the period
    by_day: dict[date, list[int]] = {}
    for m, g, e in raw:
        if counted(m):
            cell = by_day.setdefault(local(m).date(), [0, 0])
            cell[0] += g
            cell[1] += g + e
    assert {d.day: [d.counts.good, d.counts.total] for d in report.days if d.counts.total} == {
        d: c for d, c in by_day.items() if c[1]
    }
    # excluded minutes per reason, by walking the week's minutes (maintenance first)
    minutes = range(WEEK.start, WEEK.end)
    maint = sum(1 for m in minutes if in_maintenance(m))
    hours = sum(1 for m in minutes if with_hours and not in_maintenance(m) and not business(m))
    assert report.excluded[ExclusionReason.MAINTENANCE] == maint
    assert report.excluded[ExclusionReason.BUSINESS_HOURS] == hours


def test_terms_without_tiers_judge_like_terms_with_them() -> None:
    counts = SeriesCounts()
    counts.add(WEEK.start, 1, 2)
    terms = ObjectiveTerms(target=0.9, window=CalendarWindow(PeriodKind.WEEK, BERLIN))
    with_tiers = replace(terms, tiers=(*terms.tiers,))
    assert judge_period(terms, counts, WEEK, WEEK.end_ms) == judge_period(with_tiers, counts, WEEK, WEEK.end_ms)
