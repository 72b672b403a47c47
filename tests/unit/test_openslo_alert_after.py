"""`alert_after` (OpenSLO `alertAfter`) and `alert_when_breaching` / `alert_when_resolved` in the alert math:
a tier fires only once its condition has held for `alert_after` at every evaluation since it began,
and announces firing / resolving only when told to. Pure, no servers."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from strategies import Case, cases, stream_sources

from shared.budget import AlertState, BurnRateTier, Severity, decide, judge, measure, quiet
from shared.budget.counts import Counts
from shared.budget.evaluate import Evaluation, TierReading, TransitionType
from shared.budget.model import ObjectiveTerms, RollingWindow
from shared.timeutil import MINUTE_MS

TIER = BurnRateTier("t", Severity.PAGE, 60, 5, 2.0)


def evaluation(now_ms: int, burning: bool) -> Evaluation:
    reading = TierReading("t", Severity.PAGE, 2.0, 3.0 if burning else 0.0, 3.0 if burning else 0.0, 10, burning, 60)
    return Evaluation(now_ms, 0, 1, Counts(10, 10), 1.0, 0.0, 0.0, (reading,))


def run(tier: BurnRateTier, steps: list[tuple[int, bool]]) -> list[tuple[int, TransitionType]]:
    return [(steps[n][0], kind) for n, kind in run_indexed(tier, steps)]


def run_indexed(tier: BurnRateTier, steps: list[tuple[int, bool]]) -> list[tuple[int, TransitionType]]:
    """The transitions, by the index of the evaluation that caused them."""
    terms = ObjectiveTerms(target=0.99, window=RollingWindow(60 * 24), tiers=(tier,))
    state = AlertState()
    out: list[tuple[int, TransitionType]] = []
    for n, (now_ms, burning) in enumerate(steps):
        state, transitions = decide(terms, state, evaluation(now_ms, burning))
        out.extend((n, t.type) for t in transitions)
    return out


STEPS = st.lists(st.tuples(st.integers(0, 600), st.booleans()), max_size=40).map(
    lambda xs: sorted(((m * MINUTE_MS, b) for m, b in xs), key=lambda x: x[0])
)


@given(STEPS, st.integers(0, 120))
def test_a_tier_fires_only_once_its_condition_held_for_alert_after(steps: list[tuple[int, bool]], after: int) -> None:
    fired = run_indexed(replace(TIER, alert_after_minutes=after), steps)
    for n, kind in fired:
        if kind is TransitionType.BURNRATE_FIRING:
            # the condition held at every evaluation from the one that began the run up to this one, `after` long
            began = n
            while began > 0 and steps[began - 1][1]:
                began -= 1
            assert steps[n][0] - steps[began][0] >= after * MINUTE_MS
            assert all(b for _, b in steps[began : n + 1])
        else:
            assert not steps[n][1]
    if after == 0:
        assert [k for _, k in fired] == [k for _, k in run(TIER, steps)]


def test_alert_after_waits_and_a_gap_restarts_the_wait() -> None:
    tier = replace(TIER, alert_after_minutes=10)
    steps = [(0, True), (5 * MINUTE_MS, True), (6 * MINUTE_MS, False), (7 * MINUTE_MS, True), (16 * MINUTE_MS, True),
             (17 * MINUTE_MS, True), (18 * MINUTE_MS, False)]  # fmt: skip
    assert run(tier, steps) == [
        (17 * MINUTE_MS, TransitionType.BURNRATE_FIRING),
        (18 * MINUTE_MS, TransitionType.BURNRATE_RESOLVED),
    ]


@given(STEPS)
def test_a_tier_that_does_not_announce_keeps_its_state_silently(steps: list[tuple[int, bool]]) -> None:
    both = run(TIER, steps)
    assert run(replace(TIER, announce_firing=False), steps) == [
        t for t in both if t[1] is not TransitionType.BURNRATE_FIRING
    ]
    assert run(replace(TIER, announce_resolved=False), steps) == [
        t for t in both if t[1] is not TransitionType.BURNRATE_RESOLVED
    ]


@given(cases(), st.data())
def test_quiet_agrees_with_decide_with_alert_after_and_pending_tiers(case: Case, data: st.DataObject) -> None:
    tiers = tuple(
        replace(t, alert_after_minutes=data.draw(st.sampled_from([0, 1, 30])),
                announce_firing=data.draw(st.booleans()), announce_resolved=data.draw(st.booleans()))
        for t in case.terms.tiers
    )  # fmt: skip
    terms = replace(case.terms, tiers=tiers)
    measured = measure(terms, stream_sources(case), case.now_ms)
    names = [t.name for t in tiers] + ["gone"]
    pending = data.draw(
        st.dictionaries(st.sampled_from(names), st.sampled_from([case.now_ms, case.now_ms - MINUTE_MS,
                                                                  case.now_ms - 60 * MINUTE_MS]))
    )  # fmt: skip
    state = AlertState(
        firing=frozenset(data.draw(st.lists(st.sampled_from(names), max_size=3))),
        seq=data.draw(st.integers(0, 5)),
        pending=tuple(sorted(pending.items())),
    )
    after, transitions = decide(terms, state, judge(terms, measured))
    assert quiet(terms, state, measured) == (not transitions and after == state)


def test_pending_tiers_survive_the_checkpoint_form() -> None:
    state = AlertState(firing=frozenset({"a"}), pending=(("b", 5), ("c", 7)))
    assert AlertState.from_json(state.to_json()) == state
    assert AlertState.from_json({}) == AlertState()
