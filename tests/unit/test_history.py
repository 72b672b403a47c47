"""shared.history: the api's recomputation reads stored buckets exactly as the evaluator reads its own."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from support import agreement_spec, objective_spec

from shared.budget import SeriesCounts, evaluate
from shared.contract import objective_terms
from shared.history import PrefixCounts, TermsInForce, combine, history, in_force, instants
from shared.series import series_key, series_name

buckets = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(0, 50), st.integers(0, 50)).map(
        lambda b: (b[0], min(b[1], b[2]), b[2])
    ),
    max_size=200,
)


@given(buckets, st.integers(-10, 3100), st.integers(0, 3200))
def test_prefix_sums_answer_every_range_like_the_evaluators_minute_buckets(
    rows: list[tuple[int, int, int]], start: int, length: int
) -> None:
    reference = SeriesCounts()
    for minute, good, total in rows:
        reference.add(minute, good, total)
    source = PrefixCounts(rows)
    assert source.range(start, start + length) == reference.range(start, start + length)
    assert list(source.buckets(start, start + length)) == list(reference.buckets(start, start + length))


@given(buckets, st.sampled_from(["occurrences", "timeslices"]), st.integers(0, 3000 * 60_000))
def test_an_evaluation_over_prefix_sums_equals_one_over_minute_buckets(
    rows: list[tuple[int, int, int]], budgeting: str, now_ms: int
) -> None:
    objective: dict[str, Any] = {"target": 0.95, "window": "1d", "budgeting": budgeting}
    if budgeting == "timeslices":
        objective |= {"slice_length": "5m", "slice_target": 0.9}
    terms = objective_terms(agreement_spec(timezone="Europe/Berlin"), objective_spec(**objective))
    reference = SeriesCounts()
    for minute, good, total in rows:
        reference.add(minute, good, total)
    assert evaluate(terms, PrefixCounts(rows), now_ms) == evaluate(terms, reference, now_ms)


def _columns(rows: list[tuple[int, int, int]]) -> tuple[list[int], list[int], list[int]]:
    """One stored series as the api reads it: unique minutes ascending, with their goods and totals."""
    summed: dict[int, tuple[int, int]] = {}
    for minute, good, total in rows:
        g, t = summed.get(minute, (0, 0))
        summed[minute] = (g + good, t + total)
    minutes = sorted(summed)
    return minutes, [summed[m][0] for m in minutes], [summed[m][1] for m in minutes]


@given(buckets, buckets, st.integers(-10, 3100), st.integers(0, 3200))
def test_prefix_sums_of_stored_columns_equal_those_of_the_buckets_one_or_several_series(
    first: list[tuple[int, int, int]], second: list[tuple[int, int, int]], start: int, length: int
) -> None:
    end = start + length
    alone = PrefixCounts.of_columns([_columns(first)])
    assert alone.range(start, end) == PrefixCounts(first).range(start, end)
    both = PrefixCounts.of_columns([_columns(first), _columns(second)])
    reference = PrefixCounts(first + second)
    assert both.range(start, end) == reference.range(start, end)
    assert list(both.buckets(start, end)) == list(reference.buckets(start, end))


def test_series_names_round_trip_and_objectives_read_their_rule_and_matchers() -> None:
    eu, us = ((("region", "eu"),), "<=300.0"), ((("region", "us"),), "<=300.0")
    assert series_key(series_name(eu)) == eu
    assert series_key("") == ((), "")
    terms = objective_terms(
        agreement_spec(),
        objective_spec(target=0.9, window="1d", matchers={"region": "eu"}, threshold={"op": "<=", "value": 300}),
    )
    source = combine(
        {eu: ([1], [1], [2]), us: ([1], [0], [5]), ((("region", "eu"),), "<=100.0"): ([1], [0], [9])},
        ("<=300.0", terms.matchers),
    )
    assert source.range(0, 10).total == 2


def test_each_instant_is_evaluated_under_the_revision_in_force_then() -> None:
    strict = objective_terms(agreement_spec(timezone="UTC"), objective_spec(target=0.99, window="1h"))
    relaxed = objective_terms(agreement_spec(timezone="UTC"), objective_spec(target=0.9, window="1h"))
    spans = [
        TermsInForce(60_000, 1, "x", strict),
        TermsInForce(600_000, 2, "x", relaxed),
        TermsInForce(900_000, 3, None, None),
    ]
    assert in_force(spans, 0) is None
    assert in_force(spans, 600_000) == spans[1]
    columns = (list(range(20)), [9] * 20, [10] * 20)
    points = history(spans, {"x": {((), ""): columns}}, instants(0, 1_200_000, 300_000))
    assert [p.terms.revision if p.terms else None for p in points] == [None, 1, 2, 3, 3]
    assert [p.evaluation is not None for p in points] == [False, True, True, False, False]
    assert points[1].evaluation == evaluate(strict, PrefixCounts([(m, 9, 10) for m in range(20)]), 300_000)
