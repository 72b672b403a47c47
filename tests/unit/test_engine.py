"""The evaluator's engine without servers: what records do to counts, statuses and events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import engine_for as engine
from support import objective_config as objective

from services.evaluator.engine import Engine
from shared.budget import (
    Comparison,
    Counts,
    RollingWindow,
    ThresholdRule,
)
from shared.measurements import Measurement
from shared.series import series_key, series_name


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_repeated_measurement_id_counts_once() -> None:
    e = engine(objective("o1"))
    first = e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-10T10:00:00"), 9, 10, id="x")])
    again = e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-10T10:00:01"), 0, 10, id="x")])
    assert (first.applied, again.applied, again.duplicates) == (1, 0, 1)
    status = {s.objective_id: s for s in e.drain().statuses}["o1"]
    assert (status.evaluation.counts.good, status.evaluation.counts.total) == (9, 10)


def test_a_measurement_older_than_every_window_is_dropped_and_counted() -> None:
    e = engine(objective("o1", window=RollingWindow(60), tiers=()))
    now = ms("2026-03-10T10:00:00")
    e.apply(0, "api.availability", [Measurement("api.availability", now, 10, 10)])
    late = e.apply(0, "api.availability", [Measurement("api.availability", now - 45 * 24 * 3_600_000, 0, 10)])
    assert (late.applied, late.too_late) == (0, 1)


def test_closing_a_reporting_period_below_target_emits_sla_breached_with_the_credit_owed() -> None:
    e = engine(objective("o1", tiers=()))
    # March in Berlin ends at 2026-03-31T22:00Z (CEST); 97 % compliance owes the 10 % tier.
    e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-31T21:59:00"), 97, 100)])
    e.drain()
    e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-31T22:00:00"), 100, 100)])
    breached = [ev for ev in e.drain().events if ev.type == "accord.sla.breached"]
    assert len(breached) == 1
    data = breached[0].event["data"]
    assert data["period"]["label"] == "2026-03"
    assert data["compliance"] == 0.97
    assert data["credit_percent"] == 10.0

    replay = engine(objective("o1", tiers=()))
    replay.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-31T21:59:00"), 97, 100)])
    replay.apply(0, "api.availability", [Measurement("api.availability", ms("2026-04-02T00:00:00"), 100, 100)])
    assert [ev.id for ev in replay.drain().events if ev.type == "accord.sla.breached"] == [breached[0].id]


def test_a_period_closed_at_or_above_target_emits_nothing() -> None:
    e = engine(objective("o1", tiers=()))
    e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-03-31T21:00:00"), 995, 1000)])
    e.apply(0, "api.availability", [Measurement("api.availability", ms("2026-04-01T08:00:00"), 10, 10)])
    assert not [ev for ev in e.drain().events if ev.type == "accord.sla.breached"]


def test_threshold_objectives_with_different_rules_and_matchers_count_their_own_events() -> None:
    fast = objective("fast", "api.latency", threshold=ThresholdRule(Comparison.LE, 0.3), tiers=())
    eu = objective(
        "eu", "api.latency", threshold=ThresholdRule(Comparison.LE, 1.0), matchers=(("region", "eu"),), tiers=()
    )
    e = engine(fast, eu)
    now = ms("2026-03-10T10:00:00")
    e.apply(
        0,
        "api.latency",
        [
            Measurement("api.latency", now, value=0.2, weight=3, labels=(("region", "eu"),)),
            Measurement("api.latency", now, value=0.5, labels=(("region", "eu"),)),
            Measurement("api.latency", now, value=2.0, labels=(("region", "us"),)),
        ],
    )
    counts = {s.objective_id: s.evaluation.counts for s in e.drain().statuses}
    assert (counts["fast"].good, counts["fast"].total) == (3, 5)
    assert (counts["eu"].good, counts["eu"].total) == (4, 4)


def test_series_names_round_trip() -> None:
    key = ((("region", "eu"), ("tier", "gold")), "<=0.3")
    assert series_key(series_name(key)) == key
    assert series_key("") == ((), "")


def test_an_id_repeated_past_the_dedup_horizon_counts_again_whether_or_not_memory_was_pruned() -> None:
    for prune in (False, True):
        e = Engine([objective("o1")], dedup_horizon_minutes=60, max_age_minutes=400 * 24 * 60)
        start = ms("2026-03-10T10:00:00")
        e.apply(0, "api.availability", [Measurement("api.availability", start, 9, 10, id="x")])
        inside = e.apply(0, "api.availability", [Measurement("api.availability", start + 59 * 60_000, 10, 10)])
        again = e.apply(0, "api.availability", [Measurement("api.availability", start, 9, 10, id="x")])
        assert (inside.applied, again.duplicates) == (1, 1)
        e.apply(0, "api.availability", [Measurement("api.availability", start + 2 * 3_600_000, 10, 10)])
        if prune:
            e.prune()
        past = e.apply(0, "api.availability", [Measurement("api.availability", start, 9, 10, id="x")])
        assert (past.applied, past.duplicates) == (1, 0), f"prune={prune}"


def test_pruning_forgets_what_no_window_reaches_and_changes_no_reading() -> None:
    e = engine(objective("o1", window=RollingWindow(60), tiers=()))
    start = ms("2026-03-10T10:00:00")
    for hour in range(24 * 40):  # forty days, one bucket an hour
        e.apply(0, "api.availability", [Measurement("api.availability", start + hour * 3_600_000, 9, 10)])
    before = {s.objective_id: s.evaluation for s in e.drain().statuses}
    buckets = e.stats()["buckets"]
    e.prune()
    assert e.stats()["buckets"] < buckets  # the reporting period (a month) bounds what is kept
    # a second later (same minute): evaluated, whatever the cadence skips
    e.apply(0, "api.availability", [Measurement("api.availability", start + (24 * 40 - 1) * 3_600_000 + 1000, 0, 0)])
    after = {s.objective_id: s.evaluation for s in e.drain().statuses}
    assert after["o1"].counts == before["o1"].counts


def test_hour_deltas_drained_over_several_checkpoints_add_up_to_the_hours_of_the_minutes() -> None:
    e = engine(objective("o1"), objective("t1", threshold=ThresholdRule(Comparison.LE, 0.3)))
    start = ms("2026-03-10T09:58:00")
    hours: dict[tuple[str, str, int], list[int]] = {}
    minutes: dict[tuple[str, str, int], tuple[int, int]] = {}
    for i in range(12):
        batch = [
            Measurement("api.availability", start + i * 37_000, 3, 4),
            Measurement("api.availability", start - i * 61_000, 1, 1, labels=(("region", "eu"),)),
            Measurement("api.availability", start + i * 11_000, value=0.1 * i, weight=2),
        ]
        e.apply(0, "api.availability", batch)
        if i % 3 == 2:  # a checkpoint now and then: minutes are absolute, hours deltas
            changes = e.drain()
            for ind, series, minute, good, total in changes.buckets:
                minutes[(ind, series, minute)] = (good, total)
            for ind, series, hour, good, total in changes.hours:
                acc = hours.setdefault((ind, series, hour), [0, 0])
                acc[0] += good
                acc[1] += total
    rolled: dict[tuple[str, str, int], list[int]] = {}
    for (ind, series, minute), (good, total) in minutes.items():
        acc = rolled.setdefault((ind, series, minute // 60), [0, 0])
        acc[0] += good
        acc[1] += total
    assert hours == rolled
    assert len({h for _, _, h in hours}) == 2  # the data crosses an hour


def test_retention_keeps_minutes_for_the_longest_window_and_hours_longer() -> None:
    e = engine(objective("o1"))
    now = ms("2026-03-10T10:00:00")
    e.apply(0, "api.availability", [Measurement("api.availability", now, 1, 1)])
    ((key, first_minute, first_hour),) = e.retention(minute_days=2, hour_days=400)
    assert key == "api.availability"
    # the 30-day window and the month's reporting period (at most 32 days) need their minutes: 33 days
    assert now // 60_000 - first_minute == 33 * 24 * 60
    assert now // 60_000 // 60 - first_hour == 400 * 24


def test_objectives_alike_waiting_for_a_checkpoint_are_each_written_with_their_reading() -> None:
    """Quiet statuses are judged when drained, once per (terms, measured): objectives with equal terms share the
    reading, another target gets its own, and one removed while its status waited is still written."""
    e = engine(objective("o1"), objective("o2"), objective("o3", target=0.95))
    key = "api.availability"
    e.apply(0, key, [Measurement(key, ms("2026-03-10T10:00:00"), 999, 1000)])
    e.drain()
    e.apply(0, key, [Measurement(key, ms("2026-03-10T10:00:01"), 1000, 1000)])  # good, a new second: quiet
    e.set_objectives([objective("o1"), objective("o3", target=0.95)])  # o2 goes while its status waits
    statuses = {s.objective_id: s for s in e.drain().statuses}
    assert set(statuses) == {"o1", "o2", "o3"}
    for oid in statuses:
        assert statuses[oid].evaluation.counts == Counts(1999, 2000)
    assert statuses["o1"].evaluation == statuses["o2"].evaluation
    assert statuses["o3"].evaluation.budget_consumed == pytest.approx(0.01)
    assert statuses["o1"].evaluation.budget_consumed == pytest.approx(0.05)
