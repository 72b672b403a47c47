"""Roll-ups stay exact: a sum planned from hour and day cells plus edge minutes equals the plain
sum of the minute buckets, for random data, windows across DST changes and period starts (calendar
edges on half hours), and exclusions that cut hours (maintenance, recurring maintenance, business
hours). The reference walks every minute and asks each exclusion by its own definition
(tests/strategies.py `is_excluded`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import MINUTE_MS, Case, cases, is_excluded

from shared.budget import CalendarWindow, Counts, PeriodKind, SeriesCounts, excluded_intervals, measure
from shared.budget.counts import ZERO
from shared.budget.reports import period_terms
from shared.budget.rollups import (
    CellSums,
    PlannedSource,
    held_minutes,
    needed_minutes,
    plan,
    plan_window,
    retention_cutoffs,
    roll_up,
)
from shared.timeutil import MINUTES_PER_DAY, MINUTES_PER_HOUR

SIZES = [(MINUTES_PER_HOUR,), (MINUTES_PER_DAY, MINUTES_PER_HOUR), (MINUTES_PER_DAY,)]


def buckets_of(case: Case) -> dict[int, Counts]:
    out: dict[int, Counts] = {}
    for m in case.measurements:
        minute = m.timestamp_ms // MINUTE_MS
        out[minute] = out.get(minute, ZERO) + Counts(m.good, m.total)
    return out


def window_of(case: Case) -> tuple[int, int]:
    end = case.now_ms // MINUTE_MS + 1
    window = case.terms.window
    if isinstance(window, CalendarWindow):
        return window.period(case.now_ms).start_ms // MINUTE_MS, end
    return end - window.minutes, end


@given(cases(), st.sampled_from(SIZES))
def test_a_planned_window_sums_exactly_what_its_minutes_sum(case: Case, sizes: tuple[int, ...]) -> None:
    buckets = buckets_of(case)
    start, end = window_of(case)
    excluded = excluded_intervals(case.terms.exclusions, start, end)
    p = plan_window(start, end, excluded, sizes)
    cells = {size: roll_up(((k, c.good, c.total) for k, c in buckets.items()), size) for size in sizes}
    # only the minutes the plan reads are handed over: the cells must carry the rest
    edge = {k: c for k, c in buckets.items() if any(a <= k < b for a, b in p.minutes)}
    planned = CellSums(edge, cells).total(p)
    expected = ZERO
    for minute, c in buckets.items():
        if start <= minute < end and not is_excluded(minute, case.terms.exclusions):
            expected = expected + c
    assert planned == expected


@given(
    st.lists(st.tuples(st.integers(-10_000, 10_000), st.integers(0, 10_000)), max_size=12),
    st.sampled_from(SIZES),
)
def test_a_plan_covers_each_minute_once_and_reads_few_minutes(
    spans: list[tuple[int, int]], sizes: tuple[int, ...]
) -> None:
    intervals = sorted({(a, a + n) for a, n in spans})
    merged: list[tuple[int, int]] = []
    for a, b in intervals:  # disjoint input, as included_intervals gives
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    p = plan(merged, sizes)
    covered: list[int] = []
    for a, b in p.minutes:
        covered.extend(range(a, b))
    for size, cell_spans in p.cells:
        for first, end in cell_spans:
            covered.extend(range(first * size, end * size))
    assert sorted(covered) == [m for a, b in merged for m in range(a, b)]
    smallest = min(sizes)
    # at most one cell's worth of minutes on each side of every interval
    assert p.minute_count() <= 2 * (smallest - 1) * max(1, len(merged))


def test_a_thirty_day_window_reads_hours_and_two_edges() -> None:
    start = 29_000_000 + 17  # not on an hour
    p = plan_window(start, start + 30 * MINUTES_PER_DAY, [])
    assert p.minute_count() == (MINUTES_PER_HOUR - 17) + 17
    assert sum(b - a for a, b in p.spans(MINUTES_PER_HOUR)) == 30 * 24 - 1


def test_an_excluded_half_hour_makes_its_hour_minutes() -> None:
    hour = 500_000
    p = plan_window(hour * 60, (hour + 3) * 60, [(hour * 60 + 60 + 15, hour * 60 + 60 + 45)])
    assert p.spans(MINUTES_PER_HOUR) == ((hour, hour + 1), (hour + 2, hour + 3))
    assert p.minutes == ((hour * 60 + 60, hour * 60 + 75), (hour * 60 + 105, hour * 60 + 120))


def test_cell_sizes_must_nest() -> None:
    with pytest.raises(ValueError, match="divide"):
        plan([(0, 100)], (90, 60))


def test_retention_keeps_hours_at_least_as_long_as_minutes() -> None:
    assert retention_cutoffs(10 * MINUTES_PER_DAY, 2, 10) == (8 * MINUTES_PER_DAY, 0)
    with pytest.raises(ValueError, match="at least as long"):
        retention_cutoffs(0, 10, 2)


class _SmallDays(SeriesCounts):
    __slots__ = ()
    DENSE_AT = 20  # dense and sparse days both, with few buckets


@given(st.lists(st.tuples(st.integers(0, 3 * MINUTES_PER_DAY), st.integers(0, 5), st.integers(0, 5)), max_size=400))
def test_a_bulk_load_holds_what_adding_one_by_one_holds(rows: list[tuple[int, int, int]]) -> None:
    rows = [(m, min(g, t), t) for m, g, t in rows]
    one, bulk = _SmallDays(), _SmallDays()
    for m, g, t in rows:
        one.add(m, g, t)
    bulk.load([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert list(bulk.buckets(0, 4 * MINUTES_PER_DAY)) == list(one.buckets(0, 4 * MINUTES_PER_DAY))
    assert len(bulk) == len(one)
    for start, end in [(0, 4 * MINUTES_PER_DAY), (17, 2000), (MINUTES_PER_DAY + 5, 3 * MINUTES_PER_DAY - 7)]:
        assert bulk.range(start, end) == one.range(start, end)


def test_a_bulk_load_of_full_days_matches_adding_them() -> None:
    first = 20_000 * MINUTES_PER_DAY - 100  # a partial day, two full days, a partial day
    rows = [(m, (m * 7) % 5, 5 + m % 3) for m in range(first, first + 2 * MINUTES_PER_DAY + 300)]
    rows[MINUTES_PER_DAY] = (rows[MINUTES_PER_DAY][0], 0, 0)  # a bucket of total 0 in the second full day
    one, bulk = SeriesCounts(), SeriesCounts()
    for m, g, t in rows:
        one.add(m, g, t)
    bulk.load([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    span = (first - 5, first + 3 * MINUTES_PER_DAY)
    assert list(bulk.buckets(*span)) == list(one.buckets(*span))
    assert len(bulk) == len(one)
    for start in (first, first + 101, 20_000 * MINUTES_PER_DAY + 61):
        assert bulk.range(start, start + MINUTES_PER_DAY + 7) == one.range(start, start + MINUTES_PER_DAY + 7)


@given(cases())
def test_measuring_from_hour_cells_and_the_needed_minutes_equals_measuring_every_minute(case: Case) -> None:
    full = SeriesCounts()
    for minute, c in buckets_of(case).items():
        full.add(minute, c.good, c.total)
    needed = needed_minutes(case.terms, case.now_ms)
    if needed is None:  # timeslices read every minute
        return
    buckets = buckets_of(case)
    hours = roll_up((k, c.good, c.total) for k, c in buckets.items())
    minutes = [(k, c.good, c.total) for k, c in buckets.items() if any(a <= k < b for a, b in needed)]
    # split in two "series", to check that cells given twice are summed
    hour_rows = [(h, c.good // 2, c.total // 2) for h, c in hours.items()]
    hour_rows += [(h, c.good - c.good // 2, c.total - c.total // 2) for h, c in hours.items()]
    planned = PlannedSource(hour_rows, minutes, needed)
    expected = measure(case.terms, full, case.now_ms)
    assert measure(case.terms, planned, case.now_ms) == expected

    # The same cells as the api reads them: columns per series, in ascending order (one series, and two).
    def columns(rows: list[tuple[int, int, int]]) -> tuple[list[int], list[int], list[int]]:
        ordered = sorted(rows)
        return [r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered]

    one_series = [(h, c.good, c.total) for h, c in hours.items()]
    halves = [hour_rows[: len(hours)], hour_rows[len(hours) :]]
    for hour_columns in ([columns(one_series)], [columns(h) for h in halves]):
        source = PlannedSource.of_columns(hour_columns, [columns(minutes)], needed)
        assert measure(case.terms, source, case.now_ms) == expected


def test_a_planned_source_refuses_minutes_it_was_not_given() -> None:
    source = PlannedSource([], [], [(60, 70)])
    assert source.range(60, 70) == ZERO
    assert source.range(0, 240) == ZERO  # whole hours
    with pytest.raises(LookupError):
        source.range(61, 200)
    with pytest.raises(LookupError):
        PlannedSource.of_columns([], [], [(60, 70)]).range(61, 200)


def _inside(spans: list[tuple[int, int]], held: list[tuple[int, int]]) -> bool:
    return all(any(c <= a and b <= d for c, d in held) for a, b in spans if a < b)


@given(
    cases(),
    st.integers(0, 2 * MINUTES_PER_DAY * MINUTE_MS),
    st.lists(st.floats(0, 1), min_size=1, max_size=6),
    st.integers(0, 6 * MINUTES_PER_HOUR),
)
def test_held_minutes_hold_what_every_later_evaluation_up_to_its_end_reads(
    case: Case, ahead: int, at: list[float], recent: int
) -> None:
    """The band: minutes held for [now, now + ahead] are all that measuring at any instant between reads, for
    the objective's terms and for its reporting-period terms (what closing a period reads)."""
    tz = case.terms.window.timezone if isinstance(case.terms.window, CalendarWindow) else "Asia/Kolkata"
    for terms in (case.terms, period_terms(case.terms, PeriodKind.MONTH, tz)):
        held = held_minutes(terms, case.now_ms, case.now_ms + ahead, recent)
        if held is None:
            assert terms.budgeting.sliced
            continue
        for f in at:
            instant = case.now_ms + int(f * ahead)
            needed = needed_minutes(terms, instant)
            assert needed is not None
            assert _inside(needed, held), (instant, needed, held)


@given(cases(), st.integers(0, MINUTE_MS - 1), st.integers(0, MINUTE_MS - 1), st.integers(0, 900))
def test_held_minutes_depend_on_the_minutes_of_the_instants_only(case: Case, a: int, b: int, band: int) -> None:
    """The evaluator remembers held spans per (shapes read, first minute, last minute): any instants within
    the same two minutes must hold the same minutes."""
    first = case.now_ms - case.now_ms % MINUTE_MS
    last = first + band * MINUTE_MS
    for recent in (60, 120):
        expected = held_minutes(case.terms, first, last, recent)
        assert held_minutes(case.terms, first + a, last + b, recent) == expected
