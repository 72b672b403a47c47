"""Anchored calendar windows (OpenSLO `calendar.startTime` + duration), RatioTimeslices and gte tiers in the
budget math: tables for the cases a reader checks by hand, hypothesis against the plain references in
tests/strategies.py (period starts found by scanning wall-clock minutes; slices summed one by one)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CALENDARS, MINUTE_MS, ZONES, ref_calendar_index, ref_start_minute
from support import engine_for, objective_config

from shared.budget import (
    Budgeting,
    BurnRateTier,
    CalendarWindow,
    Counts,
    ObjectiveTerms,
    RollingWindow,
    SeriesCounts,
    Severity,
    evaluate,
    parse_window,
)
from shared.budget.periods import Calendar
from shared.budget.reports import parse_period
from shared.measurements import Measurement


def utc_minute(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) // 60


def test_a_week_from_saturday_noon_in_berlin_is_exact_across_the_march_change() -> None:
    window = parse_window("1w from 2026-11-28T12:00", "Europe/Berlin")
    assert isinstance(window, CalendarWindow)
    first = window.period(utc_minute("2026-11-30T00:00") * MINUTE_MS)
    assert (first.start, first.end) == (utc_minute("2026-11-28T11:00"), utc_minute("2026-12-05T11:00"))
    assert first.label == "2026-11-28T12:00+1w"
    spring = window.period(utc_minute("2027-03-29T00:00") * MINUTE_MS)  # clocks go forward Sunday 28 March
    assert spring.label == "2027-03-27T12:00+1w"
    assert (spring.start, spring.end) == (utc_minute("2027-03-27T11:00"), utc_minute("2027-04-03T10:00"))
    assert spring.end - spring.start == 7 * 24 * 60 - 60
    before = window.period(utc_minute("2026-11-28T10:59") * MINUTE_MS)  # periods run backwards too
    assert before.label == "2026-11-21T12:00+1w"


def test_a_start_in_a_dst_gap_is_the_transition_and_months_from_the_31st_clamp() -> None:
    days = Calendar.parse("1d from 2026-03-07T02:30")
    gap = days.period("America/New_York", utc_minute("2026-03-08T12:00") * MINUTE_MS)
    assert gap.start == utc_minute("2026-03-08T07:00")  # 02:30 does not exist: 03:00 EDT, the transition
    assert gap.label == "2026-03-08T02:30+1d"
    months = Calendar.parse("1M from 2026-01-31T00:00")
    labels = [months.nth("UTC", k).label for k in range(4)]
    assert labels == ["2026-01-31T00:00+1M", "2026-02-28T00:00+1M", "2026-03-31T00:00+1M", "2026-04-30T00:00+1M"]
    assert months.nth("UTC", 1).end == utc_minute("2026-03-31T00:00")


def test_default_anchors_keep_their_meaning_and_labels() -> None:
    week = parse_window("week", "Europe/Berlin")
    assert isinstance(week, CalendarWindow)
    assert week.period(utc_minute("2026-12-02T00:00") * MINUTE_MS).label == "2026-W49"
    assert week.label == "week"
    assert week.nominal_minutes == 7 * 1440


@pytest.mark.parametrize(
    ("text", "reason"),
    [("2Y from 2026-01-01T00:00", "400 days"), ("13M from 2026-01-01T00:00", "400 days"),
     ("1h from 2026-01-01T00:00", "anchored"), ("1w from 2026-02-30T00:00", "no such date")],
)  # fmt: skip
def test_an_anchored_window_too_long_or_malformed_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_window(text, "UTC")


@given(CALENDARS, st.sampled_from(ZONES), st.integers(utc_minute("2019-01-01T00:00"), utc_minute("2031-01-01T00:00")))
def test_anchored_periods_equal_the_wall_clock_reference(calendar: Calendar, tz: str, minute: int) -> None:
    period = calendar.period(tz, minute * MINUTE_MS)
    k = ref_calendar_index(calendar, minute, tz)
    assert (period.start, period.end) == (ref_start_minute(calendar, k, tz), ref_start_minute(calendar, k + 1, tz))
    assert period.start <= minute < period.end
    assert parse_period(period.label, tz, calendar) == period


def test_parse_period_needs_the_calendar_and_one_of_its_starts() -> None:
    calendar = Calendar.parse("1w from 2026-11-28T12:00")
    with pytest.raises(ValueError, match="anchored calendar"):
        parse_period("2026-11-28T12:00+1w", "UTC")
    with pytest.raises(ValueError, match="starts no period"):
        parse_period("2026-11-29T12:00+1w", "UTC", calendar)
    with pytest.raises(ValueError, match="last 1w"):
        parse_period("2026-11-28T12:00+2w", "UTC", calendar)


SLICES = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3), st.integers(0, 10**6)), max_size=40)


@given(SLICES, st.sampled_from([1, 5, 7]))
def test_ratio_timeslices_average_the_slices_ratios_exactly(cells: list[tuple[int, int, int]], size: int) -> None:
    """Per slice: ratio good/total (slices without events are not counted); SLI = their mean."""
    now = 10_000
    counts = SeriesCounts()
    per_slice: dict[int, list[int]] = {}
    for offset, bad, good in cells:
        minute = now - offset
        counts.add(minute, good, good + bad)
        cell = per_slice.setdefault(minute // size, [0, 0])
        cell[0] += good
        cell[1] += good + bad
    terms = ObjectiveTerms(0.99, RollingWindow(60), budgeting=Budgeting.RATIO_TIMESLICES, slice_minutes=size)
    ev = evaluate(terms, counts, now * MINUTE_MS)
    start = now + 1 - 60
    ratios = [Fraction(g, t) for k, (g, t) in per_slice.items() if t and k * size >= start]
    assert ev.counts.total == len(ratios) * 10**9
    if not ratios:
        assert ev.sli is None
        return
    assert ev.sli is not None
    assert abs(Fraction(ev.sli) - sum(ratios, Fraction(0)) / len(ratios)) <= Fraction(1, 10**9)
    budget = Fraction(1, 100) * len(ratios)
    consumed = sum((1 - r for r in ratios), Fraction(0)) / budget
    assert abs(Fraction(ev.budget_consumed) - consumed) <= Fraction(len(ratios), 10**9) / budget + Fraction(1, 10**9)


def test_a_gte_tier_fires_at_its_factor_and_a_gt_tier_only_above() -> None:
    counts = SeriesCounts()
    counts.add(100, 90, 100)  # 10 % bad against a 10 % budget: burn rate exactly 1
    for inclusive, burning in ((False, False), (True, True)):
        tier = BurnRateTier("t", Severity.PAGE, 10, 5, 1.0, inclusive=inclusive)
        ev = evaluate(ObjectiveTerms(0.9, RollingWindow(60), (tier,)), counts, 100 * MINUTE_MS)
        assert ev.tiers[0].long_burn_rate == 1.0
        assert ev.tiers[0].burning is burning
    assert Counts(1, 1).bad == 0


def test_the_engine_closes_an_anchored_reporting_period_with_its_label() -> None:
    week = Calendar.parse("1w from 2026-11-28T12:00")
    objective = replace(objective_config("o1", tiers=()), reporting_period=week)  # Berlin, 99 %
    engine = engine_for(objective)
    last = utc_minute("2026-12-05T10:59")  # the last minute of the week from Saturday 28 November 12:00 CET
    engine.apply(0, "api.availability", [Measurement("api.availability", last * MINUTE_MS, 97, 100)])
    engine.drain()
    engine.apply(0, "api.availability", [Measurement("api.availability", (last + 1) * MINUTE_MS, 100, 100)])
    (breached,) = [e for e in engine.drain().events if e.type == "accord.sla.breached"]
    assert breached.event["data"]["period"]["label"] == "2026-11-28T12:00+1w"
    assert breached.event["data"]["compliance"] == 0.97
