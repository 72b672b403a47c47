"""Properties of the budget math, checked by hypothesis against the deliberately simple reference
in tests/strategies.py, which recomputes every number from the raw list of measurements. The
streaming side goes through SeriesCounts (roll-ups, drop_before) and evaluate() (interval
arithmetic, prefix sums). Example counts come from the hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

from itertools import product

from hypothesis import given
from hypothesis import strategies as st
from strategies import DAY, LABEL_SETS, MINUTE_MS, Case, Raw, cases, reference, stream_sources

from shared.budget import (
    AlertState,
    BurnRateTier,
    CalendarWindow,
    Counts,
    Evaluation,
    Measured,
    ObjectiveTerms,
    PeriodKind,
    RollingWindow,
    SeriesCounts,
    Severity,
    Window,
    classify,
    decide,
    evaluate,
    judge,
    measure,
    quiet,
)

# ---------------------------------------------------------------- the streaming side


def stream(case: Case, drop: bool = True) -> Evaluation:
    """What the evaluator does: classify, count per label set, keep only what windows need, evaluate."""
    terms = case.terms
    return evaluate(terms, stream_sources(case, drop), case.now_ms)


# ---------------------------------------------------------------- properties


@given(cases())
def test_streaming_evaluation_equals_the_reference_recomputed_from_raw_measurements(case: Case) -> None:
    assert stream(case) == reference(case)


@given(cases(), st.data())
def test_adding_a_bad_event_never_raises_the_remaining_budget(case: Case, data: st.DataObject) -> None:
    before = stream(case, drop=False)
    minute = case.now_ms // MINUTE_MS - data.draw(st.integers(-2, 50_000))
    labels = data.draw(st.sampled_from(LABEL_SETS))
    if case.terms.threshold is not None:
        rule = case.terms.threshold
        bad = {"<": 1e9, "<=": 1e9, ">": -1e9, ">=": -1e9}[rule.op]
        extra = Raw(minute * MINUTE_MS, labels, value=bad, count=1)
        assert classify(rule, bad) == Counts(0, 1)
    else:
        extra = Raw(minute * MINUTE_MS, labels, good=0, total=1)
    after = stream(Case(case.terms, case.now_ms, [*case.measurements, extra]), drop=False)
    # bad/allowed can only grow; allow one rounding step where it stays mathematically equal
    assert after.budget_remaining <= before.budget_remaining + 1e-12
    assert after.counts.bad >= before.counts.bad


@given(
    st.lists(st.tuples(st.integers(-3 * DAY, 3 * DAY), st.integers(0, 5), st.integers(0, 5)), max_size=60),
    st.lists(st.tuples(st.integers(-4 * DAY, 4 * DAY), st.integers(0, 4 * DAY)), min_size=1, max_size=10),
    st.one_of(st.none(), st.integers(-3 * DAY, 3 * DAY)),
)
def test_series_range_and_buckets_equal_a_naive_sum(
    adds: list[tuple[int, int, int]], ranges: list[tuple[int, int]], drop: int | None
) -> None:
    series = SeriesCounts()
    kept: list[tuple[int, int, int]] = []
    for minute, good, extra in adds:
        series.add(minute, good, good + extra)
        kept.append((minute, good, good + extra))
    if drop is not None:
        series.drop_before(drop)
        kept = [k for k in kept if k[0] >= drop]
        assert all(m >= drop for m in series.minutes())
    for start, length in ranges:
        end = start + length
        inside = [k for k in kept if start <= k[0] < end]
        assert series.range(start, end) == Counts(sum(k[1] for k in inside), sum(k[2] for k in inside))
        naive: dict[int, list[int]] = {}
        for m, g, t in inside:
            naive.setdefault(m, [0, 0])
            naive[m][0] += g
            naive[m][1] += t
        expected = [(m, Counts(g, t)) for m, (g, t) in sorted(naive.items()) if t > 0]
        assert list(series.buckets(start, end)) == expected


@given(cases(), st.data())
def test_quiet_says_exactly_when_decide_would_change_nothing(case: Case, data: st.DataObject) -> None:
    """The evaluator's shortcut: `quiet` must agree with judge + decide on every state."""
    measured = measure(case.terms, stream_sources(case), case.now_ms)
    names = [t.name for t in case.terms.tiers] + ["gone"]
    state = AlertState(
        firing=frozenset(data.draw(st.lists(st.sampled_from(names), max_size=3))),
        crossed=frozenset(data.draw(st.lists(st.sampled_from([0.5, 0.75, 0.9, 0.3]), max_size=3))),
        exhausted=data.draw(st.booleans()),
        seq=data.draw(st.integers(0, 5)),
        period_start=data.draw(st.sampled_from([None, measured.window_start, measured.window_start - 1])),
    )
    after, transitions = decide(case.terms, state, judge(case.terms, measured))
    assert quiet(case.terms, state, measured) == (not transitions and after == state)


SMALL_COUNTS = [Counts(good, total) for total in range(5) for good in range(total + 1)]


def _agrees(terms: ObjectiveTerms, state: AlertState, measured: Measured) -> bool:
    after, transitions = decide(terms, state, judge(terms, measured))
    return quiet(terms, state, measured) == (not transitions and after == state)


def test_quiet_agrees_with_decide_on_every_small_tier_reading() -> None:
    """Exhaustive over small counts and round targets: burn rate == factor happens exactly here."""
    units = Counts(1, 1)
    for target, factor, severity, min_events, inclusive in product(
        (0.5, 0.75, 0.8), (1.0, 2.0), list(Severity), (0, 3), (False, True)
    ):
        tier = BurnRateTier("t0", severity, 60, 5, factor, inclusive=inclusive)  # inclusive: OpenSLO op gte
        terms = ObjectiveTerms(target, RollingWindow(60), (tier,), (), min_events)
        for (long, short), firing in product(product(SMALL_COUNTS, SMALL_COUNTS), (frozenset(), frozenset({"t0"}))):
            measured = Measured(0, 100, 160, None, units, units, ((long, long, short),))
            assert _agrees(terms, AlertState(firing=firing), measured), (terms, long, short, firing)


def test_quiet_agrees_with_decide_on_every_small_budget() -> None:
    """Exhaustive over small counts: consumed == a threshold and == 1 happen exactly here."""
    windows: tuple[Window, ...] = (RollingWindow(60), CalendarWindow(PeriodKind.MONTH))
    for target, units, thresholds, window in product(
        (0.5, 0.75, 0.8),
        SMALL_COUNTS,
        ((), (0.5, 1.0), (0.25, 0.5, 0.75)),
        windows,
    ):
        terms = ObjectiveTerms(target, window, (), thresholds)
        measured = Measured(0, 100, 160, None, units, units, ())
        for crossed, exhausted, period_start in product(
            (frozenset(), frozenset({0.5}), frozenset({0.25, 0.5})), (False, True), (None, 100, 99)
        ):
            state = AlertState(crossed=crossed, exhausted=exhausted, period_start=period_start)
            assert _agrees(terms, state, measured), (terms, units, state)
