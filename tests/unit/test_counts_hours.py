"""SeriesCounts holding old hours as cells only stays exact: range sums equal the sums of every minute for random
data, ranges and mixes of held minutes and hour cells (made by coarsening, or by loading cells and minutes), and
a range whose partial-hour edge falls in an hour held only as a cell (with events) raises instead of answering.
Late adds into such hours reach the cell and `take_late`; `fill` brings the minutes back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.budget import Counts, SeriesCounts
from shared.budget.counts import ZERO
from shared.timeutil import MINUTES_PER_DAY, MINUTES_PER_HOUR

SPAN = 3 * MINUTES_PER_DAY
BASE = 20_000 * MINUTES_PER_DAY


class _Small(SeriesCounts):
    __slots__ = ()
    DENSE_AT = 20  # sparse and dense days both, with few buckets


rows_strategy = st.lists(
    st.tuples(st.integers(0, SPAN - 1), st.integers(0, 5), st.integers(0, 5)).map(
        lambda r: (BASE + r[0], min(r[1], r[2]), r[2])
    ),
    max_size=300,
)
spans_strategy = st.lists(st.tuples(st.integers(0, SPAN), st.integers(1, 400)), max_size=6).map(
    lambda xs: _merged([(BASE + a, BASE + a + n) for a, n in xs])
)
ranges_strategy = st.lists(st.tuples(st.integers(-5, SPAN + 5), st.integers(0, SPAN)), min_size=1, max_size=12)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _reference(rows: list[tuple[int, int, int]]) -> dict[int, Counts]:
    out: dict[int, Counts] = {}
    for m, g, t in rows:
        out[m] = out.get(m, ZERO) + Counts(g, t)
    return out


def _held_hours(keep: list[tuple[int, int]], before: int) -> set[int]:
    """Hours the counts hold minutes of after coarsen(keep, before)."""
    held = set()
    for h in range(BASE // 60 - 1, (BASE + SPAN) // 60 + 2):
        first = h * 60
        if first + 60 > before or any(a < first + 60 and first < b for a, b in keep):
            held.add(h)
    return held


def _check_ranges(counts: SeriesCounts, ref: dict[int, Counts], held: set[int], ranges: list[tuple[int, int]]) -> None:
    hour_totals: dict[int, int] = {}
    for m, c in ref.items():
        hour_totals[m // 60] = hour_totals.get(m // 60, 0) + c.total
    for a, n in ranges:
        start, end = BASE + a, BASE + a + n
        expected = ZERO
        for m, c in ref.items():
            if start <= m < end:
                expected = expected + c
        partial = set()
        if start < end:
            if start % 60:
                partial.add(start // 60)
            if end % 60:
                partial.add(end // 60)
            if start // 60 == (end - 1) // 60 and (start % 60 or end % 60):
                partial = {start // 60}
        missing = [h for h in partial if h not in held and hour_totals.get(h, 0)]
        if missing:
            with pytest.raises(LookupError):
                counts.range(start, end)
        else:
            assert counts.range(start, end) == expected, (start, end)


@given(rows_strategy, spans_strategy, st.integers(0, SPAN + 120), ranges_strategy, st.booleans())
def test_sums_over_hour_cells_and_held_minutes_equal_the_minute_sums(
    rows: list[tuple[int, int, int]],
    keep: list[tuple[int, int]],
    before: int,
    ranges: list[tuple[int, int]],
    small: bool,
) -> None:
    before += BASE
    ref = _reference(rows)
    coarsened = _Small() if small else SeriesCounts()
    for m, g, t in rows:
        coarsened.add(m, g, t)
    coarsened.coarsen(keep, before)
    held = _held_hours(keep, before)
    _check_ranges(coarsened, ref, held, ranges)

    # the same state loaded: cells for the hours not held, minutes for the others
    loaded = _Small() if small else SeriesCounts()
    minute_rows = sorted((m, c.good, c.total) for m, c in ref.items() if m // 60 in held)
    loaded.load([r[0] for r in minute_rows], [r[1] for r in minute_rows], [r[2] for r in minute_rows])
    cells: dict[int, list[int]] = {}
    for m, c in ref.items():
        if m // 60 not in held:
            cell = cells.setdefault(m // 60, [0, 0])
            cell[0] += c.good
            cell[1] += c.total
    hours = sorted(cells)
    loaded.add_cells(hours, [cells[h][0] for h in hours], [cells[h][1] for h in hours])
    _check_ranges(loaded, ref, held, ranges)
    # and as the evaluator loads it: one call, cells of held hours given too (and left out)
    direct = _Small() if small else SeriesCounts()
    all_cells: dict[int, list[int]] = {}
    for m, c in ref.items():
        cell = all_cells.setdefault(m // 60, [0, 0])
        cell[0] += c.good
        cell[1] += c.total
    spans = _merged([(h * 60, h * 60 + 60) for h in sorted(held)])
    every = sorted(all_cells)
    backwards = minute_rows[::-1]  # in any order: PostgreSQL's array_agg promises none
    direct.load_held(
        spans,
        [r[0] for r in backwards],
        [r[1] for r in backwards],
        [r[2] for r in backwards],
        every[::-1],
        [all_cells[h][0] for h in every[::-1]],
        [all_cells[h][1] for h in every[::-1]],
    )
    _check_ranges(direct, ref, held, ranges)
    assert len(direct) == len(loaded)
    for m, c in ref.items():
        if c.total:
            assert coarsened.holds(m) == loaded.holds(m) == (m // 60 in held)


@given(rows_strategy, rows_strategy, spans_strategy, st.integers(0, SPAN + 120), ranges_strategy)
def test_late_adds_reach_the_cells_and_fill_brings_back_every_minute(
    stored: list[tuple[int, int, int]],
    late: list[tuple[int, int, int]],
    keep: list[tuple[int, int]],
    before: int,
    ranges: list[tuple[int, int]],
) -> None:
    before += BASE
    counts = SeriesCounts()
    for m, g, t in stored:
        counts.add(m, g, t)
    counts.coarsen(keep, before)
    held = _held_hours(keep, before)
    # what memory holds after the late adds (a day without events when coarsened comes back minute by minute)
    # an add to an hour held as a cell only is a delta for the stored minute, unless the hour had no events
    # (then its minutes are known: none), when the hour is held from then on
    deltas = []
    for m, g, t in late:
        counts.add(m, g, t)
        if not counts.holds(m):
            deltas.append((m, g, t))
    late_held = {r[0]: counts.holds(r[0]) for r in late}
    held_now = {h for h in range(BASE // 60 - 1, (BASE + SPAN) // 60 + 2) if counts.holds(h * 60)}
    assert held_now >= held
    ref = _reference(stored + late)
    _check_ranges(counts, ref, held_now, ranges)
    # what the checkpoint would add to the stored minute rows of hours held as cells only
    pending = _reference(deltas)
    for m in sorted({r[0] for r in late}):
        took = counts.take_late(m)
        if late_held[m]:
            assert took is None
        else:
            assert took == pending[m]
            counts._late[m] = [took.good, took.total]  # put back: not checkpointed yet
    # fetch every hour back from the stored rows: minutes = stored + what is not stored yet
    everything = [(BASE - 60, BASE + SPAN + 60)]
    wanted = counts.coarse_hours(everything)
    stored_rows = sorted(_reference(stored).items())
    mismatched = counts.fill(
        wanted, [m for m, _ in stored_rows], [c.good for _, c in stored_rows], [c.total for _, c in stored_rows]
    )
    assert mismatched == 0
    assert counts.coarse_hours(everything) == []
    assert all(late == [0, 0] for late in counts._late.values())  # zeros in empty hours: nothing to fetch
    assert dict(counts.buckets(BASE - 60, BASE + SPAN + 60)) == {m: c for m, c in ref.items() if c.total}
    for a, n in ranges:
        assert counts.range(BASE + a, BASE + a + n) == sum(
            (c for m, c in ref.items() if BASE + a <= m < BASE + a + n), ZERO
        )


def test_a_dense_thirty_day_series_held_as_hours_is_small() -> None:
    import tracemalloc

    first = BASE
    minutes = list(range(first, first + 30 * MINUTES_PER_DAY))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    counts = SeriesCounts()
    counts.load(minutes, [1] * len(minutes), [1] * len(minutes))
    end = first + 30 * MINUTES_PER_DAY
    counts.coarsen([(first, first + 7 * MINUTES_PER_HOUR), (end - 6 * MINUTES_PER_HOUR, end)], end)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert counts.range(first + 5, end) == Counts(30 * MINUTES_PER_DAY - 5, 30 * MINUTES_PER_DAY - 5)
    assert size < 64 * 1024, size  # 0.73 MiB with every minute
