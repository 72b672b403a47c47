"""SeriesCounts' compact per-day storage: the same answers as a plain dict of minutes, in far less memory.

A sparse day keeps its buckets in a dict, a dense one in an int64 array with hour and day sums
(`DENSE_AT` decides); the model below is the trivial dict the storage must agree with, through
every mix of add / drop_before / range (and its memo) / buckets / add_slices / minutes / len / bucket.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.budget import Counts, SeriesCounts
from shared.budget.counts import DAY, HOUR

EPOCH_DAY = 29_000_000 // DAY * DAY  # a day boundary in 2025, in epoch minutes


class Model:
    """The obvious implementation: {minute: [good, total]}; a bucket added with total 0 is still a bucket."""

    def __init__(self) -> None:
        self.cells: dict[int, list[int]] = {}

    def add(self, minute: int, good: int, total: int) -> None:
        cell = self.cells.setdefault(minute, [0, 0])
        cell[0] += good
        cell[1] += total

    def drop_before(self, minute: int) -> int:
        old = [m for m in self.cells if m < minute]
        for m in old:
            del self.cells[m]
        return len(old)

    def range(self, start: int, end: int) -> Counts:
        inside = [c for m, c in self.cells.items() if start <= m < end]
        return Counts(sum(c[0] for c in inside), sum(c[1] for c in inside))

    def buckets(self, start: int, end: int) -> list[tuple[int, Counts]]:
        return [(m, Counts(*self.cells[m])) for m in sorted(self.cells) if start <= m < end and self.cells[m][1]]

    def add_slices(self, start: int, end: int, size: int, into: dict[int, list[int]]) -> None:
        for m, (good, total) in self.cells.items():
            if start <= m < end:
                acc = into.setdefault(m // size, [0, 0])
                acc[0] += good
                acc[1] += total


def tuned(dense_at: int, memo: int) -> type[SeriesCounts]:
    """SeriesCounts whose days go dense after `dense_at` buckets, with a range memo of `memo` entries."""
    attrs = {"__slots__": (), "DENSE_AT": dense_at, "RANGE_MEMO": memo}
    return type(f"SeriesCounts_{dense_at}_{memo}", (SeriesCounts,), attrs)


TUNINGS = [(dense_at, memo) for dense_at in (0, 1, 3, SeriesCounts.DENSE_AT) for memo in (2, SeriesCounts.RANGE_MEMO)]


def minutes_near(base: int) -> st.SearchStrategy[int]:
    """Minutes over four days from `base`, crowded at day and hour boundaries."""
    boundary = st.builds(
        lambda d, h, off: base + d * DAY + h * HOUR + off,
        st.integers(-1, 3),
        st.sampled_from([0, 1, 12, 23, 24]),
        st.integers(-2, 2),
    )
    return st.one_of(st.integers(base - DAY, base + 3 * DAY), boundary, st.integers(base, base + 90))


Op = tuple[str, int, int, int]
"""(kind, minute, x, y): add / again (good, bad), burst (count, step), range / buckets (length, -), slices (length,
size)."""

SLICE_SIZES = [1, 2, 3, 4, 5, 7, 10, 59, 60, 61, 90, 119, 120, DAY - 1, DAY, 2 * DAY]


def operations(base: int) -> st.SearchStrategy[list[Op]]:
    minute = minutes_near(base)
    length = st.one_of(st.integers(0, 3 * HOUR), st.integers(0, 5 * DAY), st.sampled_from([DAY, HOUR, 2 * DAY + 1]))
    op = st.one_of(
        st.tuples(st.just("add"), minute, st.integers(0, 4), st.integers(0, 3)),
        st.tuples(st.just("add"), minute, st.just(0), st.just(0)),
        # the minute added to last, again (the evaluator's common case: memos hold that minute apart)
        st.tuples(st.just("again"), st.just(0), st.integers(0, 4), st.integers(0, 3)),
        st.tuples(st.just("burst"), minute, st.integers(1, 400), st.integers(1, 7)),
        st.tuples(st.just("drop"), minute, st.just(0), st.just(0)),
        st.tuples(st.just("range"), minute, length, st.just(0)),
        st.tuples(st.just("buckets"), minute, length, st.just(0)),
        st.tuples(st.just("slices"), minute, length, st.sampled_from(SLICE_SIZES)),
        st.tuples(st.just("check"), st.just(0), st.just(0), st.just(0)),
    )
    return st.lists(op, max_size=40)


def snap(data: st.DataObject, model: Model, minute: int) -> int:
    """Half the time, a minute next to a bucket that holds counts (so bounds fall on and beside them)."""
    near: bool = bool(model.cells) and data.draw(st.booleans())
    return data.draw(st.sampled_from(sorted(model.cells))) + data.draw(st.integers(-1, 1)) if near else minute


def check_all(series: SeriesCounts, model: Model) -> None:
    assert series.minutes() == sorted(model.cells)
    assert len(series) == len(model.cells)
    for m in model.cells:
        assert series.bucket(m) == Counts(*model.cells[m])
        far = m - 7 * DAY
        assert series.bucket(far) == Counts(*model.cells.get(far, [0, 0]))


@given(
    st.sampled_from(TUNINGS),
    st.sampled_from([0, -3 * DAY + 17, EPOCH_DAY]),
    st.data(),
)
def test_series_counts_agree_with_a_plain_dict(tuning: tuple[int, int], base: int, data: st.DataObject) -> None:
    series, model = tuned(*tuning)(), Model()
    ranges: list[tuple[int, int]] = []  # asked again after later adds and drops: the memo must stay exact
    last = base
    for kind, minute, x, y in data.draw(operations(base)):
        if kind == "again":
            kind, minute = "add", last
        if kind == "add":
            series.add(minute, x, x + y)
            model.add(minute, x, x + y)
            last = minute
        elif kind == "burst":  # many minutes in a row: days and hours go dense
            for m in range(minute, minute + x * y, y):
                series.add(m, m % 3, 2)
                model.add(m, m % 3, 2)
        elif kind == "check":
            check_all(series, model)
        elif kind == "drop":
            cut = snap(data, model, minute)
            assert series.drop_before(cut) == model.drop_before(cut)
            assert all(m >= cut for m in series.minutes())
        else:
            start = snap(data, model, minute)
            end = snap(data, model, start + x)
            if kind == "range":
                ranges.append((start, end))
                assert series.range(start, end) == model.range(start, end)
                assert series.range(start, end) == model.range(start, end)  # from the memo
            elif kind == "buckets":
                assert list(series.buckets(start, end)) == model.buckets(start, end)
            else:
                got: dict[int, list[int]] = {start // y: [1, 2]}  # accumulates into what is there
                want: dict[int, list[int]] = {start // y: [1, 2]}
                series.add_slices(start, end, y, got)
                model.add_slices(start, end, y, want)
                assert got == want
        for start, end in ranges[-3:]:
            assert series.range(start, end) == model.range(start, end)
    check_all(series, model)
    assert series.range(base - 10 * DAY, base + 10 * DAY) == model.range(base - 10 * DAY, base + 10 * DAY)


def test_a_bucket_with_no_events_is_still_a_bucket() -> None:
    series = SeriesCounts()
    series.add(EPOCH_DAY + 5, 0, 0)
    assert len(series) == 1
    assert series.minutes() == [EPOCH_DAY + 5]
    assert series.bucket(EPOCH_DAY + 5) == Counts()
    assert list(series.buckets(EPOCH_DAY, EPOCH_DAY + DAY)) == []
    into: dict[int, list[int]] = {}
    series.add_slices(EPOCH_DAY, EPOCH_DAY + DAY, 5, into)
    assert into == {(EPOCH_DAY + 5) // 5: [0, 0]}
    series.add(EPOCH_DAY + 5, 1, 2)
    series.add(EPOCH_DAY + 5, 0, 0)
    assert len(series) == 1
    assert series.bucket(EPOCH_DAY + 5) == Counts(1, 2)
    assert series.drop_before(EPOCH_DAY + 6) == 1
    assert len(series) == 0


def test_a_dense_day_changes_nothing_on_overflow() -> None:
    series = SeriesCounts()
    for m in range(EPOCH_DAY, EPOCH_DAY + DAY):
        series.add(m, 1, 1)
    with pytest.raises(OverflowError):
        series.add(EPOCH_DAY + 3, 0, 2**63)
    assert series.bucket(EPOCH_DAY + 3) == Counts(1, 1)
    assert series.range(EPOCH_DAY, EPOCH_DAY + DAY) == Counts(DAY, DAY)
    assert series.range(EPOCH_DAY, EPOCH_DAY + 4) == Counts(4, 4)


def _bytes_per_series(build: list[tuple[int, int, int]], copies: int = 3) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(copies):
            series = SeriesCounts()
            for minute, good, total in build:
                series.add(minute, good, total)
            kept.append(series)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == copies
    return (after - before) / copies


def test_a_dense_30_day_series_fits_in_well_under_a_megabyte_and_a_half() -> None:
    dense = [(m, 990 + m % 10, 1000) for m in range(EPOCH_DAY, EPOCH_DAY + 30 * DAY)]
    size = _bytes_per_series(dense)
    print(f"\ndense 30-day series: {size:,.0f} bytes ({size / 2**20:.3f} MiB)")
    assert size < 1.5e6


def test_a_sparse_series_costs_no_more_than_its_buckets() -> None:
    # 10 minutes a day for 30 days: kept as dicts, not 30 whole-day arrays (that would be ~750 KB).
    sparse = [(EPOCH_DAY + d * DAY + k * 97, 1, 1) for d in range(30) for k in range(10)]
    size = _bytes_per_series(sparse)
    print(f"\nsparse 30-day series (300 buckets): {size:,.0f} bytes")
    assert size < 80_000


def test_slices_of_every_size_over_dense_and_sparse_days() -> None:
    """add_slices takes whole days and hours at once when they fall in one slice, and sums runs with sum()."""
    series, model = SeriesCounts(), Model()
    for m in range(EPOCH_DAY - 50, EPOCH_DAY + 2 * DAY + 70):  # two dense days, then a sparse one
        if m % 11 and (m < EPOCH_DAY + 2 * DAY or m % 97 == 0):
            series.add(m, m % 4, 3)
            model.add(m, m % 4, 3)
    for size in [*range(1, 130), 179, 180, 181, DAY - 1, DAY, DAY + 1, 2 * DAY]:
        for start, end in ((EPOCH_DAY - 60, EPOCH_DAY + 3 * DAY), (EPOCH_DAY + 59, EPOCH_DAY + DAY + 601)):
            got: dict[int, list[int]] = {}
            want: dict[int, list[int]] = {}
            series.add_slices(start, end, size, got)
            model.add_slices(start, end, size, want)
            assert got == want, size


def test_ranges_and_buckets_bounded_on_and_beside_buckets() -> None:
    series, model = SeriesCounts(), Model()
    for m in [*range(EPOCH_DAY - 3, EPOCH_DAY + 200), EPOCH_DAY + DAY + 5, EPOCH_DAY + DAY + 61, EPOCH_DAY + DAY + 900]:
        series.add(m, 1, 1 + m % 2)
        model.add(m, 1, 1 + m % 2)
    points = sorted({p + d for p in [*model.cells, EPOCH_DAY + HOUR, EPOCH_DAY + 2 * DAY] for d in (-1, 0, 1)})
    for start in points[::3]:
        for end in points:
            assert series.range(start, end) == model.range(start, end), (start, end)
            assert list(series.buckets(start, end)) == model.buckets(start, end), (start, end)


def test_remembered_ranges_stay_exact_as_the_latest_minute_fills_and_late_minutes_come_in() -> None:
    """The evaluator's pattern: the same windows asked after every few adds to the latest minute, a late add now
    and then, and the windows of the next minute."""
    series, model = SeriesCounts(), Model()
    now = EPOCH_DAY + 5 * HOUR + 30
    for m in range(now - 2 * DAY, now):  # history, dense days
        series.add(m, 9, 10)
        model.add(m, 9, 10)
    for step in range(3 * 60):
        minute = now + step // 60
        if step % 7 == 3:
            minute -= 1 + step % 50  # late
        series.add(minute, step % 4, 3 + step % 4)
        model.add(minute, step % 4, 3 + step % 4)
        end = now + step // 60 + 1
        for length in (5, 60, 360, DAY, 2 * DAY):
            assert series.range(end - length, end) == model.range(end - length, end), (step, length)
