"""The evaluator's streaming engine against the reference recomputed from the raw measurement list.

Random measurement sequences (out of order, repeated ids, several label sets, ratio and
threshold indicators, both budgeting methods, rolling and DST-crossing calendar windows,
maintenance and business-hours exclusions; the cases of tests/strategies.py) are cut
into random records and fed to `Engine.apply`, as the Kafka consumer does. The status the
engine reports after the last record must equal the reference evaluated at the engine's
watermark over the measurements counted once each.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import Case, Raw, cases, reference

from services.evaluator.engine import Engine
from shared.budget import BurnRateTier, ObjectiveTerms, RollingWindow, Severity
from shared.measurements import Measurement, label_pairs
from shared.objective_config import ObjectiveConfig

INDICATOR = "svc.sli"


class EveryRecord(Engine):
    """The engine evaluating after every record, as before the once-a-second cadence: the reference for it."""

    def _must_evaluate(self, indicator: str, state: object, bad: bool, added: int) -> bool:
        return True


def _measurement(raw: Raw, mid: str) -> Measurement:
    labels = label_pairs(raw.labels)
    if raw.value is not None:
        return Measurement(INDICATOR, raw.timestamp_ms, value=raw.value, weight=raw.count, id=mid, labels=labels)
    return Measurement(INDICATOR, raw.timestamp_ms, good=raw.good, total=raw.total, id=mid, labels=labels)


@given(cases(), st.data())
def test_the_engine_fed_record_by_record_equals_the_reference(case: Case, data: st.DataObject) -> None:
    raws = data.draw(st.permutations(case.measurements))
    stream = [(_measurement(r, f"m{n}"), r) for n, r in enumerate(raws)]
    assume(stream)  # no record, nothing to evaluate: the property is about what the engine counts
    # Senders retry: some measurements arrive again, with the same id, later in the stream.
    for n in data.draw(st.lists(st.integers(0, len(stream) - 1), max_size=5)):
        stream.insert(data.draw(st.integers(n + 1, len(stream))), stream[n])
    objective = ObjectiveConfig("o1", "o1", "a1", "A", "Acme", "Shop", INDICATOR, "w", case.terms)
    # Every record evaluated, so the last status is that of the last record (the cadence's own test follows).
    engine = EveryRecord([objective], dedup_horizon_minutes=10**9, max_age_minutes=10**9)
    last = None
    position = 0
    while position < len(stream):
        size = data.draw(st.integers(1, 8))
        record = [m for m, _ in stream[position : position + size]]
        position += size
        engine.apply(0, INDICATOR, record)
        statuses = {s.objective_id: s for s in engine.drain().statuses}
        last = statuses.get("o1", last)
    # The first record's newest measurement sets the watermark, so it is never too late: it counts,
    # and every record that counts something makes the engine report the objective's status.
    assert last is not None
    watermark = engine.indicators[INDICATOR].watermark_ms
    assert watermark is not None
    unique = list({m.id: r for m, r in reversed(stream)}.values())
    expected = reference(replace(case, now_ms=watermark, measurements=unique))
    assert last.evaluation == expected


@given(cases(), st.data())
def test_the_cadence_announces_exactly_what_evaluating_every_record_announces(case: Case, data: st.DataObject) -> None:
    """Records within one second of event time, mostly good: the engine skips evaluations, yet its events
    (ids, types, sequence numbers, payloads) are those of evaluating every record; after a record in a later
    second, its status is the same too."""
    raws = data.draw(st.permutations(case.measurements))
    assume(raws)
    base = max(r.timestamp_ms for r in raws)
    # squeeze many into the watermark's second, so the cadence has something to skip
    squeezed = [replace(r, timestamp_ms=base - base % 1000 + n % 1000) if n % 2 else r for n, r in enumerate(raws)]
    stream = [_measurement(r, f"m{n}") for n, r in enumerate(squeezed)]
    objective = ObjectiveConfig("o1", "o1", "a1", "A", "Acme", "Shop", INDICATOR, "w", case.terms)
    cadence = Engine([objective], dedup_horizon_minutes=10**9, max_age_minutes=10**9)
    every = EveryRecord([objective], dedup_horizon_minutes=10**9, max_age_minutes=10**9)
    events: dict[str, list[object]] = {"cadence": [], "every": []}
    position = 0
    while position < len(stream):
        size = data.draw(st.integers(1, 3))
        record = stream[position : position + size]
        position += size
        for name, engine in (("cadence", cadence), ("every", every)):
            engine.apply(0, INDICATOR, record)
            events[name].extend((e.id, e.type, e.seq, e.event) for e in engine.drain().events)
    assert events["cadence"] == events["every"]
    later = max(m.timestamp_ms for m in stream) + 1000
    final = {}
    for name, engine in (("cadence", cadence), ("every", every)):
        engine.apply(0, INDICATOR, [Measurement(INDICATOR, later, good=0, total=0, id="last")])
        final[name] = {
            s.objective_id: (s.evaluation, s.alert_state) for s in engine.drain(quiet_statuses=None).statuses
        }
    assert final["cadence"] == final["every"]


# --- the cadence at the edges of an alert state: good events alone can end one ---------------------------------

S = 1_795_772_400_000  # the start of an event-time second


def _both(objective: ObjectiveConfig, records: list[tuple[int, int, int]]) -> tuple[list[object], list[object], int]:
    """Events of the cadence engine and of the every-record engine for single-measurement records
    (ms into the second, good, total); and how many records the cadence engine evaluated."""
    out: list[list[object]] = []
    evaluated = 0
    for kind in (Engine, EveryRecord):
        engine = kind([objective], dedup_horizon_minutes=10**9, max_age_minutes=10**9)
        events: list[object] = []
        for at, good, total in records:
            before = engine._evaluated_second.get(INDICATOR), len(engine._statuses), len(engine._quiet)
            engine.apply(0, INDICATOR, [Measurement(INDICATOR, S + at, good=good, total=total)])
            if kind is Engine and (engine._statuses or engine._quiet) and before[1:] == (0, 0):
                evaluated += 1
            events.extend((e.id, e.type, e.seq, e.event) for e in engine.drain(quiet_statuses=None).events)
        out.append(events)
    return out[0], out[1], evaluated


def _objective(**terms: object) -> ObjectiveConfig:
    return ObjectiveConfig("o1", "o1", "a1", "A", "Acme", "Shop", INDICATOR, "w", ObjectiveTerms(**terms))  # type: ignore[arg-type]


def test_a_good_record_that_re_arms_a_crossed_threshold_is_evaluated() -> None:
    """Crossed at 60 % consumed; good events bring it to 30 % (re-armed, silently); errors bring it to 87 %:
    crossed again, announced again. Skipping the good record (as the cadence once did, because no alert was
    *on*) would have kept the threshold crossed and announced nothing the second time."""
    o = _objective(target=0.99, window=RollingWindow(30 * 1440), budget_thresholds=(0.5, 1.0))
    cadence, every, _ = _both(o, [(0, 994, 1000), (100, 1000, 1000), (200, 980, 1000)])
    assert [e[1] for e in every] == ["accord.budget.threshold", "accord.budget.threshold"]  # type: ignore[index]
    assert cadence == every


def test_a_good_record_that_resolves_a_firing_tier_is_evaluated_at_that_record() -> None:
    tier = BurnRateTier("fast", Severity.PAGE, 60, 5, 2.0)
    o = _objective(target=0.99, window=RollingWindow(30 * 1440), tiers=(tier,), budget_thresholds=())
    records = [(0, 900, 1000), *((10 * n, 1000, 1000) for n in range(1, 60)), (900, 990, 1000)]
    cadence, every, _ = _both(o, records)
    types = [e[1] for e in every]  # type: ignore[index]
    assert "accord.burnrate.firing" in types
    assert "accord.burnrate.resolved" in types
    assert cadence == every


def test_good_records_far_from_ending_a_held_state_are_not_evaluated() -> None:
    """A threshold crossed by far: the good records of the same second cannot re-arm it, and are skipped."""
    o = _objective(target=0.99, window=RollingWindow(30 * 1440), budget_thresholds=(0.25, 1.0))
    records = [(0, 995, 1000), *((10 * n, 10, 10) for n in range(1, 40))]
    cadence, every, evaluated = _both(o, records)
    assert cadence == every
    assert len(every) == 1
    assert evaluated < 5  # the first, and a few bound checks that needed a fresh evaluation at most
