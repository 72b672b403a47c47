"""Budgets recomputed from stored minute buckets: an objective's status and its history series.

The api answers status and history by calling `shared.budget.evaluate` on the counts the
evaluator stored, with the terms in force at each instant, so the two agree by construction
(docs/design.md §5.5: "budgets are pure functions of the measurements and the agreement"). Pure
functions and values: the instants, the terms and the buckets are passed in.

A history over many instants loads the buckets of the whole range once (plus the longest
window any terms in force look back) and sums ranges with prefix sums, so each point costs
O(windows × log buckets) whatever the window length: 30 days at a 5-minute step is fast.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from shared.budget import Counts, Evaluation, ObjectiveTerms, evaluate, minute_of
from shared.budget.rollups import Columns, column_sums, prefix_sums
from shared.series import SeriesGroup, SeriesKey, selects, series_group

Bucket = tuple[int, int, int]
"""(minute, good, total) of one series."""

IndicatorBuckets = Mapping[SeriesKey, Columns]
"""The loaded buckets of one indicator, per series: (minutes ascending, goods, totals), as PostgreSQL returns them."""


class PrefixCounts:
    """Minute buckets summed over one or more series, with prefix sums: any range sum in O(log n).

    A `shared.budget.BucketSource`: `evaluate` reads it exactly as it reads the evaluator's
    `SeriesCounts`, so the sums (integers) are the same.
    """

    __slots__ = ("_good", "_minutes", "_total")

    def __init__(self, buckets: Iterable[Bucket]) -> None:
        self._minutes, self._good, self._total = prefix_sums(buckets)

    @classmethod
    def of_columns(cls, columns: Sequence[Columns]) -> PrefixCounts:
        """From (minutes ascending, goods, totals) columns, one triple per series: a lone series (the common case)
        becomes prefix sums without a Python object per bucket (a 60-day history reads 86,400 of them)."""
        source = cls.__new__(cls)
        source._minutes, source._good, source._total = column_sums(columns)
        return source

    def __len__(self) -> int:
        return len(self._minutes)

    def _span(self, start: int, end: int) -> tuple[int, int]:
        return bisect.bisect_left(self._minutes, start), bisect.bisect_left(self._minutes, end)

    def range(self, start: int, end: int) -> Counts:
        """Sum of the buckets with start <= minute < end."""
        i, j = self._span(start, end)
        return Counts(self._good[j] - self._good[i], self._total[j] - self._total[i])

    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """The non-empty buckets with start <= minute < end, ascending."""
        i, j = self._span(start, end)
        good, total, minutes = self._good, self._total, self._minutes
        for k in range(i, j):
            t = total[k + 1] - total[k]
            if t:
                yield minutes[k], Counts(good[k + 1] - good[k], t)


def combine(series: IndicatorBuckets, group: SeriesGroup) -> PrefixCounts:
    """The summed counts of the series an objective group reads (same rule, matchers accepted)."""
    return PrefixCounts.of_columns([columns for key, columns in series.items() if selects(group, key)])


def lookback_minutes(terms: ObjectiveTerms) -> int:
    """How many minutes before an instant its evaluation can read (window or longest tier)."""
    return max([terms.window.max_minutes, *(t.long_minutes for t in terms.tiers)])


def bucket_span(terms: Iterable[ObjectiveTerms], first_ms: int, last_ms: int) -> tuple[int, int]:
    """[start, end) in minutes of the buckets evaluations at instants in [first_ms, last_ms] can read."""
    back = max((lookback_minutes(t) for t in terms), default=0)
    return minute_of(first_ms) + 1 - back, minute_of(last_ms) + 1


@dataclass(frozen=True, slots=True)
class TermsInForce:
    """An objective's terms from `valid_from_ms` on (until the next revision).

    `terms` and `indicator` are None while the objective is not part of the agreement's
    revision (not added yet, removed, or the agreement archived): nothing is evaluated then.
    """

    valid_from_ms: int
    revision: int
    indicator: str | None
    terms: ObjectiveTerms | None


def in_force(spans: Sequence[TermsInForce], instant_ms: int) -> TermsInForce | None:
    """The revision in force at `instant_ms` (spans sorted by valid_from_ms); None before the first."""
    k = bisect.bisect_right([s.valid_from_ms for s in spans], instant_ms)
    return spans[k - 1] if k else None


def instants(from_ms: int, to_ms: int, step_ms: int) -> range:
    """from, from + step, ... up to and including `to` when it falls on the grid."""
    if step_ms <= 0:
        raise ValueError("the step must be positive")
    return range(from_ms, to_ms + 1, step_ms)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One instant of a history: the terms in force and the evaluation (None when no terms were in force)."""

    time_ms: int
    terms: TermsInForce | None
    evaluation: Evaluation | None


def history(
    spans: Sequence[TermsInForce], buckets: Mapping[str, IndicatorBuckets], times: Iterable[int]
) -> list[HistoryPoint]:
    """Evaluate the objective at every instant of `times` under the terms in force there.

    `buckets` maps each indicator the spans name to its loaded series; they must cover
    `bucket_span` of the terms and the instants.
    """
    spans = sorted(spans, key=lambda s: s.valid_from_ms)
    starts = [s.valid_from_ms for s in spans]
    sources: dict[tuple[str, SeriesGroup], PrefixCounts] = {}
    points: list[HistoryPoint] = []
    for t in times:
        k = bisect.bisect_right(starts, t)
        span = spans[k - 1] if k else None
        if span is None or span.terms is None or span.indicator is None:
            points.append(HistoryPoint(t, span, None))
            continue
        group = series_group(span.terms)
        source = sources.get((span.indicator, group))
        if source is None:
            source = sources[(span.indicator, group)] = combine(buckets.get(span.indicator, {}), group)
        points.append(HistoryPoint(t, span, evaluate(span.terms, source, t)))
    return points
