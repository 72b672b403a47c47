"""Exact roll-ups: hour (and day) cells beside the minute buckets, and how a range sum uses them.

A cell of size `s` minutes holds the sum of the minute buckets [k·s, (k+1)·s) (UTC, aligned to the
epoch: hours are `minute // 60`, days `minute // 1440`). A sum over any set of minute intervals —
a window with its exclusions cut out (maintenance, business hours, calendar edges that fall on
half hours) — is planned as the whole cells each interval covers plus the minutes at its two
edges. A cell partly excluded is never used: the included interval stops inside it, so its
included minutes are summed one by one. The plan is therefore exact whatever cuts the hours,
and a 30-day window costs about 720 hour cells (or 30 day cells and a few dozen hours) plus
at most 2 × 59 minutes per included interval.

Pure functions: no clock, no I/O (docs/design.md §3.6 for buckets).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import TypeVar

from shared.budget.counts import ZERO, Counts
from shared.budget.evaluate import window_bounds
from shared.budget.exclusions import Interval, excluded_intervals, included_intervals
from shared.budget.model import CalendarWindow, ObjectiveTerms
from shared.timeutil import MINUTES_PER_DAY, MINUTES_PER_HOUR

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Plan:
    """How to sum a set of minute intervals: `cells[size]` are [first cell, end cell) spans of cells of
    `size` minutes; `minutes` the [start, end) minute spans left over. Every minute is in exactly one."""

    minutes: tuple[Interval, ...]
    cells: tuple[tuple[int, tuple[Interval, ...]], ...]

    def spans(self, size: int) -> tuple[Interval, ...]:
        for s, spans in self.cells:
            if s == size:
                return spans
        return ()

    def minute_count(self) -> int:
        """How many minute buckets the plan reads one by one (at most)."""
        return sum(b - a for a, b in self.minutes)


def _split(a: int, b: int, sizes: Sequence[int], out: dict[int, list[Interval]], minutes: list[Interval]) -> None:
    """Cover [a, b) with the largest whole cells first, then smaller ones at the edges, then minutes."""
    if a >= b:
        return
    if not sizes:
        minutes.append((a, b))
        return
    size, rest = sizes[0], sizes[1:]
    first, last = -(-a // size), b // size  # whole cells [first, last)
    if first >= last:
        _split(a, b, rest, out, minutes)
        return
    _split(a, first * size, rest, out, minutes)
    out[size].append((first, last))
    _split(last * size, b, rest, out, minutes)


def plan(intervals: Iterable[Interval], sizes: Sequence[int] = (MINUTES_PER_HOUR,)) -> Plan:
    """The plan summing the minutes of `intervals` (disjoint [start, end) minute spans) from cells of
    `sizes` minutes (each a multiple of the next, largest first) and edge minutes."""
    ordered = sorted(sizes, reverse=True)
    for big, small in pairwise([*ordered, 1]):
        if small <= 0 or big % small:
            raise ValueError(f"cell sizes must divide each other, got {sizes!r}")
    out: dict[int, list[Interval]] = {s: [] for s in ordered}
    minutes: list[Interval] = []
    for a, b in intervals:
        _split(a, b, ordered, out, minutes)
    return Plan(tuple(_merge(minutes)), tuple((s, tuple(_merge(out[s]))) for s in ordered))


def plan_window(start: int, end: int, excluded: Sequence[Interval], sizes: Sequence[int] = (MINUTES_PER_HOUR,)) -> Plan:
    """The plan for [start, end) without the merged, sorted `excluded` intervals."""
    return plan(included_intervals(start, end, excluded), sizes)


def _merge(spans: list[Interval]) -> list[Interval]:
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def roll_up(buckets: Iterable[tuple[int, int, int]], size: int = MINUTES_PER_HOUR) -> dict[int, Counts]:
    """Cells of `size` minutes from (minute, good, total) buckets: {cell: sum of its buckets}."""
    cells: dict[int, list[int]] = {}
    for minute, good, total in buckets:
        acc = cells.get(minute // size)
        if acc is None:
            cells[minute // size] = [good, total]
        else:
            acc[0] += good
            acc[1] += total
    return {k: Counts(g, t) for k, (g, t) in cells.items()}


def sum_plan(
    p: Plan,
    minute_sum: Callable[[int, int], Counts],
    cell_sum: Callable[[int, int, int], Counts],
) -> Counts:
    """Execute a plan: `minute_sum(a, b)` sums minute buckets [a, b), `cell_sum(size, first, end)` cells."""
    found = ZERO
    for a, b in p.minutes:
        found = found + minute_sum(a, b)
    for size, spans in p.cells:
        for first, end in spans:
            found = found + cell_sum(size, first, end)
    return found


class CellSums:
    """Sums over minute buckets and cells held in dicts (the api's view of what it loaded for a plan)."""

    __slots__ = ("cells", "minutes")

    def __init__(self, minutes: dict[int, Counts], cells: dict[int, dict[int, Counts]]) -> None:
        self.minutes = minutes
        self.cells = cells

    def minute_sum(self, a: int, b: int) -> Counts:
        found = ZERO
        for minute, c in self.minutes.items():
            if a <= minute < b:
                found = found + c
        return found

    def cell_sum(self, size: int, first: int, end: int) -> Counts:
        found = ZERO
        for k, c in self.cells.get(size, {}).items():
            if first <= k < end:
                found = found + c
        return found

    def total(self, p: Plan) -> Counts:
        return sum_plan(p, self.minute_sum, self.cell_sum)


def retention_cutoffs(watermark_minute: int, minute_days: int, hour_days: int) -> tuple[int, int]:
    """(first minute kept, first hour kept) for minute detail kept `minute_days` and hour cells
    `hour_days` behind `watermark_minute`; hour cells are never cut before the minutes they sum."""
    if minute_days <= 0 or hour_days < minute_days:
        raise ValueError("minute detail needs a positive span, and hour cells at least as long a span")
    first_minute = watermark_minute - minute_days * MINUTES_PER_DAY
    first_hour = (watermark_minute - hour_days * MINUTES_PER_DAY) // MINUTES_PER_HOUR
    return first_minute, first_hour


def needed_minutes(terms: ObjectiveTerms, now_ms: int) -> list[Interval] | None:
    """The minute spans whose buckets `measure(terms, source, now_ms)` reads when whole hours come from hour
    cells: the edges of the window and of every tier window, and the hours exclusions cut. None when every
    minute is needed (timeslices: a slice's goodness needs its own minutes)."""
    if terms.budgeting.sliced:
        return None
    start, end = window_bounds(terms.window, now_ms)
    starts = {start, *(end - t.long_minutes for t in terms.tiers), *(end - t.short_minutes for t in terms.tiers)}
    lo = min(starts)
    excluded = excluded_intervals(terms.exclusions, lo, end) if terms.exclusions else []
    spans: list[Interval] = []
    for s in starts:
        spans.extend(plan_window(s, end, excluded).minutes)
    return _merge(spans)


FAR_MINUTE = 1 << 40
"""A minute past every timestamp Accord accepts (year 9999 is minute ≈ 1.7e8): "from here on"."""


def held_minutes(terms: ObjectiveTerms, from_ms: int, to_ms: int, recent_minutes: int) -> list[Interval] | None:
    """Minute spans that hold every minute `measure(terms, source, t)` reads one by one (`needed_minutes`) for
    every instant t in [from_ms, to_ms], when whole hours come from hour cells; None when every minute is.

    The spans: the last `recent_minutes` (at least an hour) before the window's end at `from_ms` and everything
    after (the current hour, whatever the end edge reaches); the band each sliding start (a rolling window's, a
    tier window's) sweeps from `from_ms` to `to_ms`, with the rest of the hour it ends in; and the needed
    minutes at instants `recent_minutes` apart from `from_ms` to `to_ms`, which hold the hours that
    exclusions and fixed calendar starts cut. Why that is enough: a cut at a fixed minute x read at t lies in
    the window at the last such instant before t (windows only move forward, and a window shorter than the
    recent span lies in it), and that instant reads the same minutes of x's hour or more.
    """
    if terms.budgeting.sliced:
        return None
    recent = max(recent_minutes, MINUTES_PER_HOUR)
    _, end = window_bounds(terms.window, from_ms)
    _, last_end = window_bounds(terms.window, max(from_ms, to_ms))
    spans: list[Interval] = [(end - recent, FAR_MINUTE)]
    instant = from_ms
    while True:
        needed = needed_minutes(terms, instant)
        assert needed is not None
        spans.extend(needed)
        if instant >= to_ms:
            break
        instant = min(instant + recent * 60_000, to_ms)
    lengths = [t.long_minutes for t in terms.tiers] + [t.short_minutes for t in terms.tiers]
    if not isinstance(terms.window, CalendarWindow):
        lengths.append(terms.window.minutes)
    for length in lengths:
        if length > recent:
            spans.append((end - length, last_end - length + MINUTES_PER_HOUR))
    return _merge(spans)


def whole_hours(spans: Sequence[Interval]) -> list[Interval]:
    """The minute spans widened to whole hours, merged."""
    return _merge(
        [
            (a // MINUTES_PER_HOUR * MINUTES_PER_HOUR, -(-b // MINUTES_PER_HOUR) * MINUTES_PER_HOUR)
            for a, b in spans
            if a < b
        ]
    )


def earliest_minute(terms: ObjectiveTerms, now_ms: int) -> int:
    """The first minute `measure(terms, source, now_ms)` can read."""
    start, end = window_bounds(terms.window, now_ms)
    return min([start, *(end - t.long_minutes for t in terms.tiers)])


class PlannedSource:
    """A count source from hour cells plus the minute buckets of some spans (`needed_minutes`): `range`
    sums whole hours from the cells and edges from the minutes. Asking for a minute outside the loaded
    spans is a bug in the caller's planning, and raises rather than answer a wrong sum."""

    __slots__ = ("_good", "_hours", "_loaded", "_minute_good", "_minute_total", "_minutes", "_total")

    def __init__(
        self,
        hours: Iterable[tuple[int, int, int]],
        minutes: Iterable[tuple[int, int, int]],
        loaded: Sequence[Interval],
    ) -> None:
        """`hours` and `minutes` are (hour or minute, good, total) cells, summed when one comes more than once
        (several series); `loaded` the minute spans the minutes cover (every bucket of them that has counts)."""
        self._hours, self._good, self._total = prefix_sums(hours)
        self._minutes, self._minute_good, self._minute_total = prefix_sums(minutes)
        self._loaded = _merge(list(loaded))

    @classmethod
    def of_columns(
        cls,
        hours: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]],
        minutes: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]],
        loaded: Sequence[Interval],
    ) -> PlannedSource:
        """From (cells in ascending order, goods, totals) columns, one triple per series: a lone series (the
        common case) becomes prefix sums without a Python object per cell."""
        source = cls.__new__(cls)
        source._hours, source._good, source._total = column_sums(hours)
        source._minutes, source._minute_good, source._minute_total = column_sums(minutes)
        source._loaded = _merge(list(loaded))
        return source

    def _hour_sum(self, first: int, end: int) -> Counts:
        lo, hi = bisect.bisect_left(self._hours, first), bisect.bisect_left(self._hours, end)
        return Counts(self._good[hi] - self._good[lo], self._total[hi] - self._total[lo])

    def _minute_sum(self, a: int, b: int) -> Counts:
        i = bisect.bisect_right(self._loaded, (a, 1 << 62)) - 1
        if i < 0 or self._loaded[i][1] < b:
            raise LookupError(f"minutes [{a}, {b}) were not loaded")
        lo, hi = bisect.bisect_left(self._minutes, a), bisect.bisect_left(self._minutes, b)
        return Counts(self._minute_good[hi] - self._minute_good[lo], self._minute_total[hi] - self._minute_total[lo])

    def range(self, start: int, end: int) -> Counts:
        """`plan([(start, end)])` summed, without building the plan: whole hours, then the minutes at each edge."""
        if start >= end:
            return ZERO
        first, last = -(-start // MINUTES_PER_HOUR), end // MINUTES_PER_HOUR
        if first >= last:
            return self._minute_sum(start, end)
        found = self._hour_sum(first, last)
        if start < first * MINUTES_PER_HOUR:
            found = found + self._minute_sum(start, first * MINUTES_PER_HOUR)
        if last * MINUTES_PER_HOUR < end:
            found = found + self._minute_sum(last * MINUTES_PER_HOUR, end)
        return found


def prefix_sums(cells: Iterable[tuple[int, int, int]]) -> tuple[list[int], list[int], list[int]]:
    """(sorted keys, prefix sums of good, prefix sums of total) of (key, good, total) cells, summed per key."""
    per_key = summed(cells)
    keys = sorted(per_key)
    good = [0, *accumulate(per_key[k][0] for k in keys)]
    total = [0, *accumulate(per_key[k][1] for k in keys)]
    return keys, good, total


Columns = tuple[Sequence[int], Sequence[int], Sequence[int]]
"""(minutes or hours ascending, goods, totals) of one series, as PostgreSQL's array_agg returns them."""


def column_sums(columns: Sequence[Columns]) -> tuple[list[int], list[int], list[int]]:
    """(keys, prefix sums of good, of total) of one or more series' columns, summed per key."""
    if len(columns) == 1:
        keys, good, total = columns[0]
        return list(keys), [0, *accumulate(good)], [0, *accumulate(total)]
    return prefix_sums(cell for at, good, total in columns for cell in zip(at, good, total, strict=True))


def summed(cells: Iterable[tuple[K, int, int]]) -> dict[K, list[int]]:
    """(key, good, total) cells summed per key, as [good, total] per key."""
    out: dict[K, list[int]] = {}
    for at, good, total in cells:
        acc = out.get(at)
        if acc is None:
            out[at] = [good, total]
        else:
            acc[0] += good
            acc[1] += total
    return out
