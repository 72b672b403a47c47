"""The status fields a reader sees: time left only within the window, and the thresholds an
exhausted budget stands for (pure functions of shared.budget, property-tested)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from support import agreement_spec, objective_spec

from services.api.routes.history import default_start
from shared.budget import AlertState, SeriesCounts, evaluate, horizon_minutes, thresholds_announced, time_left
from shared.contract import objective_terms

fractions = st.floats(min_value=-2.0, max_value=1.0, allow_nan=False)
rates = st.none() | st.floats(min_value=-1.0, max_value=1e6, allow_nan=False)
windows = st.integers(min_value=1, max_value=400 * 1440)


@given(fractions, rates, windows, st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_time_left_is_positive_and_within_the_horizon_or_none(
    remaining: float, rate: float | None, window: int, horizon: float
) -> None:
    left = time_left(remaining, rate, window, horizon)
    if left is None:
        assert rate is None or rate <= 0 or remaining <= 0 or remaining * window / rate > horizon
    else:
        assert rate is not None
        assert 0 <= left <= horizon  # 0 only when the quotient underflows (remaining 5e-324)
        assert left == remaining * window / rate


@given(windows, st.integers(min_value=0, max_value=10**12), st.none() | st.integers(min_value=0, max_value=10**10))
def test_horizon_is_the_rolling_window_or_what_is_left_of_the_period(
    window: int, now_ms: int, period_end: int | None
) -> None:
    horizon = horizon_minutes(window, now_ms, period_end)
    if period_end is None:
        assert horizon == window
    else:
        assert horizon == max(0.0, (period_end * 60_000 - now_ms) / 60_000)


@given(st.frozensets(st.sampled_from([0.25, 0.5, 0.75, 0.9])), st.booleans())
def test_an_exhausted_budget_has_crossed_the_whole_budget(crossed: frozenset[float], exhausted: bool) -> None:
    shown = thresholds_announced(AlertState(crossed=crossed, exhausted=exhausted))
    assert shown == sorted(shown)
    assert set(shown) == (crossed | {1.0} if exhausted else crossed)


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=10_000),
)
def test_history_defaults_to_the_objectives_life_on_a_grid_ending_now(
    created: int, to: int, step: int, limit: int
) -> None:
    start = default_start(created, to, step, limit)
    assert start <= to
    assert (to - start) % step == 0  # the last point is `to` itself, with the newest numbers
    assert (to - start) // step + 1 <= limit
    if created <= to and (to - created) // step < limit:
        assert created <= start < created + step  # the whole life: the first grid point after creation


def test_an_agreements_budget_counts_from_its_effective_from() -> None:
    """Data measured before the contract's start is left out, like maintenance (an import's choice)."""
    agreement = agreement_spec(name="A", provider="P", customer="C", timezone="UTC")
    objective = objective_spec(name="o", indicator="i", target=0.99, window="30d")
    series = SeriesCounts()
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    minute = int(start.timestamp()) // 60
    series.add(minute - 10, 0, 100)  # a bad spell before the contract started
    series.add(minute + 5, 100, 100)
    now_ms = (minute + 6) * 60_000
    before = evaluate(objective_terms(agreement, objective), series, now_ms)
    assert (before.counts.total, before.budget_consumed > 1) == (200, True)
    effective = agreement.model_copy(update={"effective_from": start})
    after = evaluate(objective_terms(effective, objective), series, now_ms)
    assert (after.counts.good, after.counts.total, after.budget_consumed) == (100, 100, 0.0)
