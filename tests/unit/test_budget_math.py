"""Budget math by table: SLI, budget, burn rates, tiers, windows, calendar periods, timeslices, thresholds, credits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest

from shared.budget import (
    PERIOD_RESET,
    AlertState,
    Budgeting,
    BurnRateTier,
    CalendarWindow,
    Comparison,
    Counts,
    ObjectiveTerms,
    PeriodKind,
    RollingWindow,
    SeriesCounts,
    Severity,
    ThresholdRule,
    TransitionType,
    budget_consumed,
    burn_rate,
    classify,
    credit_owed,
    decide,
    default_tiers,
    default_tiers_for,
    evaluate,
    matches,
    minute_of,
    parse_window,
    period_bounds,
    previous_period,
    sli,
)

DAY = 24 * 60


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def minute(text: str) -> int:
    return minute_of(ms(text))


@pytest.mark.parametrize(
    ("good", "total", "expected"),
    [(0, 0, None), (10, 10, 1.0), (999, 1000, 0.999), (0, 5, 0.0), (1, 4, 0.25)],
)
def test_sli_is_good_over_total_and_none_without_events(good: int, total: int, expected: float | None) -> None:
    assert sli(Counts(good, total)) == expected


@pytest.mark.parametrize(
    ("good", "total", "target", "consumed"),
    [
        (0, 0, 0.999, 0.0),
        (1000, 1000, 0.999, 0.0),
        (999, 1000, 0.999, 1.0),
        (9995, 10000, 0.999, 0.5),
        (980, 1000, 0.99, 2.0),
        (95, 100, 0.9, 0.5),
    ],
)
def test_budget_consumed_is_bad_over_allowed(good: int, total: int, target: float, consumed: float) -> None:
    assert budget_consumed(Counts(good, total), target) == pytest.approx(consumed)


@pytest.mark.parametrize(
    ("good", "total", "target", "rate"),
    [(0, 0, 0.999, None), (100, 100, 0.99, 0.0), (99, 100, 0.99, 1.0), (856, 1000, 0.99, 14.4), (94, 100, 0.99, 6.0)],
)
def test_burn_rate_is_error_ratio_over_budget_fraction(
    good: int, total: int, target: float, rate: float | None
) -> None:
    got = burn_rate(Counts(good, total), target)
    assert got == (None if rate is None else pytest.approx(rate))


@pytest.mark.parametrize(
    ("window_days", "factors"),
    [(30, (14.4, 6.0, 3.0, 1.0)), (28, (13.44, 5.6, 2.8, 14 / 15)), (7, (3.36, 1.4, 0.7, 7 / 30))],
)
def test_default_tier_factors_scale_with_the_window(window_days: int, factors: tuple[float, ...]) -> None:
    tiers = default_tiers(window_days * DAY)
    assert tuple(t.factor for t in tiers) == factors  # exact ratios, not rounded
    assert [t.name for t in tiers] == ["1h", "6h", "1d", "3d"]
    assert [t.short_minutes for t in tiers] == [5, 30, 120, 360]
    assert [t.severity for t in tiers] == [Severity.PAGE, Severity.PAGE, Severity.TICKET, Severity.TICKET]


@pytest.mark.parametrize(("kind", "factor"), [("month", 14.4), ("quarter", 43.2), ("week", 3.36)])
def test_default_tiers_of_a_calendar_window_use_its_nominal_length(kind: str, factor: float) -> None:
    assert default_tiers_for(parse_window(kind, "Europe/Berlin"))[0].factor == pytest.approx(factor)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("30d", RollingWindow(30 * DAY)),
        ("7d", RollingWindow(7 * DAY)),
        ("12h", RollingWindow(720)),
        ("90m", RollingWindow(90)),
        (" 28D ", RollingWindow(28 * DAY)),
        ("month", CalendarWindow(PeriodKind.MONTH, "Europe/Berlin")),
        ("quarter", CalendarWindow(PeriodKind.QUARTER, "Europe/Berlin")),
        ("week", CalendarWindow(PeriodKind.WEEK, "Europe/Berlin")),
    ],
)
def test_windows_parse_from_their_labels(text: str, window: RollingWindow | CalendarWindow) -> None:
    parsed = parse_window(text, "Europe/Berlin")
    assert parsed == window
    assert parse_window(parsed.label, "Europe/Berlin") == parsed


@pytest.mark.parametrize(
    ("text", "timezone", "message"),
    [
        ("", "UTC", "invalid window ''"),
        ("30", "UTC", "expected a rolling length"),
        ("30s", "UTC", "expected a rolling length"),
        ("-5d", "UTC", "expected a rolling length"),
        ("1.5d", "UTC", "expected a rolling length"),
        ("year", "UTC", "'week', 'month' or 'quarter'"),
        ("0d", "UTC", "at least one minute"),
        ("month", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
    ],
)
def test_invalid_windows_are_refused_with_a_clear_message(text: str, timezone: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_window(text, timezone)


@pytest.mark.parametrize(
    ("kind", "tz", "instant", "start", "end", "label"),
    [
        # Berlin switches to CEST on 2025-03-30: March is 31 days minus an hour.
        ("month", "Europe/Berlin", "2025-03-30T01:30Z", "2025-02-28T23:00Z", "2025-03-31T22:00Z", "2025-03"),
        ("month", "Europe/Berlin", "2025-03-31T21:59:59Z", "2025-02-28T23:00Z", "2025-03-31T22:00Z", "2025-03"),
        ("month", "Europe/Berlin", "2025-03-31T22:00Z", "2025-03-31T22:00Z", "2025-04-30T22:00Z", "2025-04"),
        # ... and back to CET on 2025-10-26: October is 31 days plus an hour.
        ("month", "Europe/Berlin", "2025-10-26T01:30Z", "2025-09-30T22:00Z", "2025-10-31T23:00Z", "2025-10"),
        # New York springs forward on Sunday 2025-03-09 and falls back on Sunday 2025-11-02.
        ("week", "America/New_York", "2025-03-09T12:00Z", "2025-03-03T05:00Z", "2025-03-10T04:00Z", "2025-W10"),
        ("week", "America/New_York", "2025-03-10T03:59Z", "2025-03-03T05:00Z", "2025-03-10T04:00Z", "2025-W10"),
        ("week", "America/New_York", "2025-11-02T12:00Z", "2025-10-27T04:00Z", "2025-11-03T05:00Z", "2025-W44"),
        ("week", "UTC", "2024-12-31T12:00Z", "2024-12-30T00:00Z", "2025-01-06T00:00Z", "2025-W01"),
        ("quarter", "Asia/Kolkata", "2025-05-01T00:00Z", "2025-03-31T18:30Z", "2025-06-30T18:30Z", "2025-Q2"),
        ("quarter", "UTC", "2025-12-31T23:59:59Z", "2025-10-01T00:00Z", "2026-01-01T00:00Z", "2025-Q4"),
        # Santiago sprang forward at midnight on Sunday 2024-09-08: the next week runs on -03 throughout.
        ("week", "America/Santiago", "2024-09-10T12:00Z", "2024-09-09T03:00Z", "2024-09-16T03:00Z", "2024-W37"),
        # Asuncion sprang forward at midnight on 2023-10-01: October began at 01:00 local (04:00Z).
        ("month", "America/Asuncion", "2023-10-15T12:00Z", "2023-10-01T04:00Z", "2023-11-01T03:00Z", "2023-10"),
        ("month", "America/Asuncion", "2023-10-01T03:59Z", "2023-09-01T04:00Z", "2023-10-01T04:00Z", "2023-09"),
        ("month", "Australia/Sydney", "2025-04-06T12:00Z", "2025-03-31T13:00Z", "2025-04-30T14:00Z", "2025-04"),
    ],
)
def test_calendar_periods_start_at_local_midnight_across_dst(
    kind: str, tz: str, instant: str, start: str, end: str, label: str
) -> None:
    period = period_bounds(kind, tz, ms(instant))
    assert (period.start, period.end, period.label) == (minute(start), minute(end), label)
    assert previous_period(period, kind, tz).end == period.start


def test_a_calendar_month_counts_events_so_far_and_resets_at_local_midnight() -> None:
    series = SeriesCounts()
    series.add(minute("2025-02-28T22:59:00+00:00"), 0, 7)  # last minute of February in Berlin
    series.add(minute("2025-02-28T23:00:00+00:00"), 9, 10)  # first minute of March
    series.add(minute("2025-03-30T01:30:00+00:00"), 10, 10)  # just after the change to CEST
    series.add(minute("2025-03-31T22:00:00+00:00"), 0, 100)  # first minute of April
    terms = ObjectiveTerms(target=0.9, window=parse_window("month", "Europe/Berlin"))
    ev = evaluate(terms, series, ms("2025-03-31T21:59:30+00:00"))
    assert (ev.window_start, ev.window_end) == (
        minute("2025-02-28T23:00:00+00:00"),
        minute("2025-03-31T22:00:00+00:00"),
    )
    assert ev.counts == Counts(19, 20)
    assert ev.period_end == minute("2025-03-31T22:00:00+00:00")
    ev = evaluate(terms, series, ms("2025-04-01T00:00:00+00:00"))
    assert ev.counts == Counts(0, 100)


def test_a_calendar_week_in_new_york_spans_the_dst_change() -> None:
    series = SeriesCounts()
    series.add(minute("2025-03-03T04:59:00+00:00"), 0, 1)  # Sunday 23:59 EST: previous week
    series.add(minute("2025-03-03T05:00:00+00:00"), 1, 1)  # Monday 00:00 EST
    series.add(minute("2025-03-10T03:59:00+00:00"), 1, 2)  # Sunday 23:59 EDT
    terms = ObjectiveTerms(target=0.5, window=CalendarWindow(PeriodKind.WEEK, "America/New_York"))
    ev = evaluate(terms, series, ms("2025-03-10T03:59:59+00:00"))
    assert ev.counts == Counts(2, 3)
    assert ev.window_end - ev.window_start == 7 * DAY - 60


@pytest.mark.parametrize(
    ("op", "threshold", "value", "count", "expected"),
    [
        ("<", 300.0, 299.9, 1, Counts(1, 1)),
        ("<", 300.0, 300.0, 1, Counts(0, 1)),
        ("<=", 300.0, 300.0, 4, Counts(4, 4)),
        (">", 0.5, 0.5, 3, Counts(0, 3)),
        (">=", 0.5, 0.5, 3, Counts(3, 3)),
        (">=", 0.5, float("nan"), 2, Counts(0, 2)),
        ("<", 1.0, 0.0, 0, Counts(0, 0)),
    ],
)
def test_threshold_measurements_are_good_when_value_op_threshold(
    op: str, threshold: float, value: float, count: int, expected: Counts
) -> None:
    assert classify(ThresholdRule(Comparison(op), threshold), value, count) == expected


def test_invalid_threshold_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid comparison"):
        ThresholdRule("==", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        ThresholdRule(Comparison.LT, float("inf"))
    with pytest.raises(ValueError, match="negative"):
        classify(ThresholdRule(Comparison.LT, 1.0), 0.5, -1)
    assert ThresholdRule("<=", 0.3).key == "<=0.3"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matchers", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"region": "eu"}, True),
        ({"region": "eu"}, {"region": "eu", "tier": "gold"}, True),
        ({"region": "eu"}, {"region": "us"}, False),
        ({"region": "eu"}, {}, False),
        ({"region": "eu", "tier": "gold"}, (("region", "eu"), ("tier", "gold")), True),
        ((("region", "eu"), ("tier", "gold")), {"region": "eu"}, False),
    ],
)
def test_a_series_matches_when_every_matcher_label_is_equal(matchers: object, labels: object, expected: bool) -> None:
    assert matches(matchers, labels) is expected  # type: ignore[arg-type]


def test_evaluate_sums_every_matching_series() -> None:
    eu, us = SeriesCounts(), SeriesCounts()
    eu.add(100, 9, 10)
    us.add(100, 5, 10)
    terms = ObjectiveTerms(target=0.9, window=RollingWindow(60))
    assert evaluate(terms, [eu, us], 100 * 60_000).counts == Counts(14, 20)
    assert evaluate(terms, [], 100 * 60_000).counts == Counts(0, 0)
    assert evaluate(terms, eu, 100 * 60_000).counts == Counts(9, 10)


@pytest.mark.parametrize(
    ("size", "slice_target", "now_minute", "minutes", "counts"),
    [
        # one-minute slices: each minute with data is one slice
        (1, 0.9, 7, [(0, 9, 10), (1, 8, 10), (2, 0, 0), (3, 10, 10)], Counts(2, 3)),
        # five-minute slices aggregate their minutes before judging the ratio
        (5, 0.9, 7, [(0, 10, 10), (1, 8, 10), (5, 1, 1), (7, 0, 1)], Counts(1, 2)),
        (5, 0.5, 7, [(0, 10, 10), (1, 8, 10), (5, 1, 1), (7, 0, 1)], Counts(2, 2)),
        # window [2, 10): the slice starting at 0 straddles its start and is left out (slices count by start)
        (5, 0.9, 9, [(1, 0, 5), (3, 0, 5), (6, 10, 10)], Counts(1, 1)),
        # ... and minutes after now do not count in the current slice
        (5, 0.9, 6, [(5, 10, 10), (7, 0, 10)], Counts(1, 1)),
    ],
)
def test_timeslices_count_good_slices_over_slices_with_data(
    size: int, slice_target: float, now_minute: int, minutes: list[tuple[int, int, int]], counts: Counts
) -> None:
    series = SeriesCounts()
    for m, good, total in minutes:
        series.add(m, good, total)
    terms = ObjectiveTerms(
        target=0.5,
        window=RollingWindow(8),
        budgeting=Budgeting.TIMESLICES,
        slice_minutes=size,
        slice_target=slice_target,
    )
    ev = evaluate(terms, series, now_minute * 60_000 + 59_999)
    assert ev.counts == counts
    assert ev.unit is Budgeting.TIMESLICES
    assert ev.budget_allowed == pytest.approx(0.5 * counts.total)


def test_timeslices_burn_rates_and_budget_count_slices() -> None:
    series = SeriesCounts()
    for m in range(60):
        series.add(m, 10 if m % 4 else 0, 10)  # every fourth one-minute slice is bad
    tier = BurnRateTier("1h", Severity.PAGE, long_minutes=60, short_minutes=5, factor=2.0)
    terms = ObjectiveTerms(target=0.9, window=RollingWindow(60), tiers=(tier,), budgeting=Budgeting.TIMESLICES)
    ev = evaluate(terms, series, 59 * 60_000)
    assert ev.counts == Counts(45, 60)
    assert ev.events == Counts(450, 600)
    assert ev.budget_consumed == pytest.approx(15 / 6)
    assert ev.tiers[0].long_burn_rate == pytest.approx(2.5)
    assert ev.tiers[0].short_burn_rate == pytest.approx((1 / 5) / 0.1)  # minutes 55..59: 56 is bad
    assert ev.tiers[0].long_total == 600  # the low-traffic guard counts events
    # The short window burns at exactly the factor (1 bad slice of 5, budget 0.1): not over it.
    assert ev.tiers[0].short_burn_rate == 2.0
    assert not ev.tiers[0].burning


@pytest.mark.parametrize(("target", "total", "bad"), [(0.99, 1000, 10), (0.999, 10_000, 10), (0.9995, 110_000, 55)])
def test_exactly_the_allowed_bad_events_consume_exactly_the_whole_budget(target: float, total: int, bad: int) -> None:
    """1 − 0.999 is 0.0010000000000000009 in floating point; the budget math must not inherit that."""
    series = SeriesCounts()
    series.add(0, total - bad, total)
    terms = ObjectiveTerms(target=target, window=RollingWindow(60), tiers=())
    ev = evaluate(terms, series, 0)
    assert ev.budget_consumed == 1.0
    assert ev.budget_allowed == bad
    _, transitions = decide(terms, AlertState(), ev)
    assert TransitionType.BUDGET_EXHAUSTED in [t.type for t in transitions]


def test_evaluation_reports_budget_in_events_and_time_left() -> None:
    series = SeriesCounts()
    series.add(0, 9_990, 10_000)  # 10 bad of 10 allowed over the month...
    series.add(30 * DAY - 1, 995, 1_000)
    terms = ObjectiveTerms(target=0.999, window=RollingWindow(30 * DAY), tiers=default_tiers(30 * DAY))
    ev = evaluate(terms, series, (30 * DAY - 1) * 60_000)
    assert ev.budget_allowed == pytest.approx(11.0)
    assert ev.budget_spent == 15
    assert ev.budget_left == pytest.approx(-4.0)
    assert ev.time_left_minutes is None  # overspent
    terms = ObjectiveTerms(target=0.99, window=RollingWindow(30 * DAY), tiers=default_tiers(30 * DAY))
    ev = evaluate(terms, series, (30 * DAY - 1) * 60_000)
    remaining = 1 - 15 / (0.01 * 11_000)
    assert ev.budget_remaining == pytest.approx(remaining)
    # the 1h tier burns at (5 / 1000) / 0.01 = 0.5: the rest would last remaining × 30 d / 0.5, longer
    # than the window itself, so the budget does not run out at this rate: no time left is projected
    assert ev.time_left_minutes is None
    series.add(30 * DAY - 1, 955, 1_000)  # 1h: 50 bad of 2,000 → rate 2.5; 60 bad of 0.01 × 12,000 allowed
    ev = evaluate(terms, series, (30 * DAY - 1) * 60_000)
    remaining = 1 - 60 / (0.01 * 12_000)
    assert ev.time_left_minutes is not None
    assert ev.time_left_minutes == pytest.approx(remaining * 30 * DAY / 2.5)
    assert ev.time_left_minutes <= 30 * DAY
    assert evaluate(terms, SeriesCounts(), 0).time_left_minutes is None


def test_a_page_needs_the_minimum_events_in_its_long_window() -> None:
    series = SeriesCounts()
    series.add(10, 0, 5)
    tiers = default_tiers(30 * DAY)
    guarded = ObjectiveTerms(target=0.99, window=RollingWindow(30 * DAY), tiers=tiers, min_events=6)
    assert [t.burning for t in evaluate(guarded, series, 10 * 60_000).tiers] == [False, False, True, True]
    open_ = ObjectiveTerms(target=0.99, window=RollingWindow(30 * DAY), tiers=tiers, min_events=5)
    assert all(t.burning for t in evaluate(open_, series, 10 * 60_000).tiers)


@pytest.mark.parametrize(
    ("compliance", "credit"),
    [(None, 0.0), (1.0, 0.0), (0.999, 0.0), (0.9989, 10.0), (0.99, 10.0), (0.9899, 25.0), (0.5, 50.0)],
)
def test_credit_owed_is_that_of_the_lowest_threshold_missed(compliance: float | None, credit: float) -> None:
    assert credit_owed(compliance, [(0.99, 25), (0.999, 10), (0.95, 50)]) == credit


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([(0.999, 25), (0.99, 10)], "must not owe less"),
        ([(0.99, 10), (0.99, 20)], "share the threshold"),
        ([(1.5, 10)], r"\(0, 1\]"),
        ([(0.99, 150)], "percentage"),
    ],
)
def test_credit_tiers_must_be_monotonic(tiers: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        credit_owed(0.5, tiers)


def test_a_new_calendar_period_rearms_thresholds_and_recovers_an_exhausted_budget() -> None:
    series = SeriesCounts()
    series.add(minute("2025-03-10T00:00:00+00:00"), 0, 10)
    terms = ObjectiveTerms(target=0.9, window=CalendarWindow(PeriodKind.MONTH, "Europe/Berlin"))
    state, out = decide(terms, AlertState(), evaluate(terms, series, ms("2025-03-10T00:00:00+00:00")))
    assert [t.type for t in out] == [TransitionType.BUDGET_THRESHOLD] * 3 + [TransitionType.BUDGET_EXHAUSTED]
    assert state.exhausted
    assert state.period_start == minute("2025-02-28T23:00:00+00:00")

    series.add(minute("2025-04-02T00:00:00+00:00"), 95, 100)  # April: half the budget gone
    state, out = decide(terms, state, evaluate(terms, series, ms("2025-04-02T00:00:00+00:00")))
    assert [(t.type, t.reason, t.threshold) for t in out] == [
        (TransitionType.BUDGET_RECOVERED, PERIOD_RESET, None),
        (TransitionType.BUDGET_THRESHOLD, None, 0.5),
    ]
    assert [t.seq for t in out] == [5, 6]
    assert state.crossed == frozenset({0.5})
    assert not state.exhausted
    assert AlertState.from_json(state.to_json()) == state


def test_a_rolling_window_keeps_its_flags_while_the_window_moves() -> None:
    series = SeriesCounts()
    series.add(0, 0, 10)
    terms = ObjectiveTerms(target=0.9, window=RollingWindow(60))
    state, _ = decide(terms, AlertState(), evaluate(terms, series, 0))
    state, out = decide(terms, state, evaluate(terms, series, 30 * 60_000))
    assert out == []
    assert state.period_start is None
    state, out = decide(terms, state, evaluate(terms, series, 60 * 60_000))  # the bad minute left the window
    assert [t.type for t in out] == [TransitionType.BUDGET_RECOVERED]
    assert out[0].reason is None


def test_series_counts_refuse_impossible_counts() -> None:
    with pytest.raises(ValueError, match="good <= total"):
        SeriesCounts().add(0, 2, 1)
    with pytest.raises(ValueError, match="good <= total"):
        SeriesCounts().add(0, -1, 1)


class OnlyRange:
    """A count source without buckets(), like a store that can only sum."""

    def __init__(self, series: SeriesCounts) -> None:
        self.series = series

    def range(self, start: int, end: int) -> Counts:
        return self.series.range(start, end)


class WithBuckets(OnlyRange):
    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        return self.series.buckets(start, end)


def test_timeslices_work_with_any_bucket_source_and_refuse_sum_only_sources() -> None:
    series = SeriesCounts()
    for m in range(0, 300, 7):
        series.add(m, m % 3, 2)
    terms = ObjectiveTerms(
        target=0.9, window=RollingWindow(240), tiers=default_tiers(240), budgeting=Budgeting.TIMESLICES, slice_minutes=5
    )
    assert evaluate(terms, [WithBuckets(series)], 299 * 60_000) == evaluate(terms, series, 299 * 60_000)
    with pytest.raises(TypeError, match="buckets"):
        evaluate(terms, OnlyRange(series), 299 * 60_000)
    occurrences = ObjectiveTerms(target=0.9, window=RollingWindow(240))
    assert evaluate(occurrences, OnlyRange(series), 0) == evaluate(occurrences, series, 0)
