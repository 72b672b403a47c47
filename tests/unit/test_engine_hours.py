"""An evaluator holding old hours as cells only gives the events of one holding every minute.

Three engines see the same records: one holds every minute and never restarts (the reference); one holds hour
cells plus the minutes evaluations read, checkpoints into a stand-in store (minute rows written absolute or
added as late deltas, hour roll-ups added, as `write_checkpoint` does), and is "restarted": a new engine loaded
from that store the way `load_partition` loads it, which then fetches the minutes its rolling windows' start
edges reach as the watermark moves (over days, into hours it held only as cells), late data landing in such
hours included. Events (ids, types, order) and the last statuses must be the same.
"""

from __future__ import annotations

import random

import pytest
from support import engine_for
from support import objective_config as objective

from services.evaluator.engine import Changes, Engine
from shared.budget import AlertState, MaintenanceWindow, RollingWindow, default_tiers
from shared.measurements import Measurement
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY

IND = "api.availability"
START = 20_500 * MINUTES_PER_DAY * MINUTE_MS + 17 * MINUTE_MS  # not on an hour


class Store:
    """series_buckets and series_hours as the checkpoint writes them."""

    def __init__(self) -> None:
        self.minutes: dict[tuple[str, int], list[int]] = {}
        self.hours: dict[tuple[str, int], list[int]] = {}
        self.watermark: int | None = None
        self.alerts: dict[str, AlertState] = {}

    def write(self, changes: Changes) -> None:
        for _, series, minute, good, total in changes.buckets:
            self.minutes[(series, minute)] = [good, total]
        for _, series, minute, good, total in changes.bucket_deltas:
            cell = self.minutes.setdefault((series, minute), [0, 0])
            cell[0] += good
            cell[1] += total
        for _, series, hour, good, total in changes.hours:
            cell = self.hours.setdefault((series, hour), [0, 0])
            cell[0] += good
            cell[1] += total
        for status in changes.statuses:
            self.alerts[status.objective_id] = status.alert_state
        for _, _, watermark in changes.indicators:
            self.watermark = watermark

    def minute_columns(self, spans: list[tuple[int, int]]) -> list[tuple[str, list[int], list[int], list[int]]]:
        out: dict[str, tuple[list[int], list[int], list[int]]] = {}
        for (series, minute), (good, total) in sorted(self.minutes.items(), key=lambda kv: kv[0][1]):
            if any(a <= minute < b for a, b in spans):
                cols = out.setdefault(series, ([], [], []))
                cols[0].append(minute)
                cols[1].append(good)
                cols[2].append(total)
        return [(s, *cols) for s, cols in out.items()]

    def hour_columns(self) -> list[tuple[str, list[int], list[int], list[int]]]:
        out: dict[str, tuple[list[int], list[int], list[int]]] = {}
        for (series, hour), (good, total) in sorted(self.hours.items(), key=lambda kv: kv[0][1]):
            cols = out.setdefault(series, ([], [], []))
            cols[0].append(hour)
            cols[1].append(good)
            cols[2].append(total)
        return [(s, *cols) for s, cols in out.items()]


def objectives() -> list:  # type: ignore[type-arg]
    day = RollingWindow(MINUTES_PER_DAY)
    two = RollingWindow(2 * MINUTES_PER_DAY)
    maintenance = MaintenanceWindow(START + 3 * 3_600_000 + 7 * MINUTE_MS, START + 5 * 3_600_000 + 41 * MINUTE_MS)
    return [
        objective("day", IND, window=day, tiers=default_tiers(MINUTES_PER_DAY)),
        objective("two", IND, window=two, tiers=default_tiers(2 * MINUTES_PER_DAY), exclusions=(maintenance,)),
    ]


def records(seed: int) -> list[list[Measurement]]:
    """Three and a half days: a record every few minutes, bad bursts, and late records up to a day and a half."""
    rnd = random.Random(seed)
    out: list[list[Measurement]] = []
    t = START
    while t < START + int(3.5 * MINUTES_PER_DAY * MINUTE_MS):
        t += rnd.randint(1, 7) * MINUTE_MS + rnd.randint(0, 59_999)
        burst = (t // 3_600_000) % 19 == 0
        total = rnd.randint(1, 50)
        good = rnd.randint(0, total) if burst else total - (rnd.random() < 0.05)
        batch = [Measurement(IND, t, good, total)]
        if rnd.random() < 0.08:
            late = t - rnd.randint(60, int(1.5 * MINUTES_PER_DAY)) * MINUTE_MS
            batch.append(Measurement(IND, late, 1, 3))
        out.append(batch)
    return out


def held_engine() -> Engine:
    objs = objectives()
    return Engine(
        objs, dedup_horizon_minutes=MINUTES_PER_DAY, max_age_minutes=400 * MINUTES_PER_DAY,
        minute_band_minutes=90, recent_minutes=60,
    )  # fmt: skip


def fill_from(engine: Engine, store: Store, blocked: dict[str, int]) -> None:
    for key, until in engine.refills(blocked):
        hours = engine.hours_to_fetch(key, until)
        rows = store.minute_columns([(h * 60, h * 60 + 60) for h in hours])
        assert engine.fill(key, until, hours, rows) == 0


def run_held(
    engine: Engine, store: Store, batches: list[list[Measurement]], events: list[tuple[str, str, int]], ahead: int
) -> int:
    """Apply like the runner: fetch before a record that needs it, checkpoint and prune now and then."""
    fetched = 0
    for i, batch in enumerate(batches):
        if not engine.covers(IND, batch):
            fetched += 1
            fill_from(engine, store, {IND: max(m.timestamp_ms for m in batch)})
            assert engine.covers(IND, batch)
        elif i % ahead == 0:
            fill_from(engine, store, {})  # ahead of need, with late adds not checkpointed yet
        engine.apply(0, IND, batch)
        if i % 3 == 0:
            changes = engine.drain(quiet_statuses=None)
            events.extend((e.id, e.type, e.seq) for e in changes.events)
            store.write(changes)
        if i % 40 == 0:
            engine.prune()
    changes = engine.drain(quiet_statuses=None)
    events.extend((e.id, e.type, e.seq) for e in changes.events)
    store.write(changes)
    return fetched


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_restart_holding_hour_cells_gives_the_events_of_holding_every_minute(seed: int) -> None:
    batches = records(seed)
    reference = engine_for(*objectives())
    expected: list[tuple[str, str, int]] = []
    for batch in batches:
        reference.apply(0, IND, batch)
        expected.extend((e.id, e.type, e.seq) for e in reference.drain().events)
    assert len(expected) >= 2  # alerts started and ended: the comparison says something

    store, events = Store(), list[tuple[str, str, int]]()
    cut = len(batches) * 2 // 3  # restart well into the third day: the 1d window's start is in old hours
    first = held_engine()
    run_held(first, store, batches[:cut], events, ahead=5)
    assert store.watermark is not None

    restarted = held_engine()
    spans, ready = restarted.load_plan(IND, store.watermark)
    assert spans is not None
    assert ready is not None
    restarted.load_indicator_held(
        IND, 0, store.watermark, store.minute_columns(spans), store.hour_columns(), spans, ready, []
    )
    for oid, alert in store.alerts.items():
        restarted.load_alert_state(oid, alert)
    held = sum(len(c) for c in restarted.indicators[IND].series.values())
    everything = sum(1 for _ in store.minutes)
    assert held < everything / 3  # it holds hour cells for most of its history
    fetched = run_held(restarted, store, batches[cut:], events, ahead=41)
    assert fetched > 0  # the watermark passed what was held at least once
    assert events == expected
    for oid in ("day", "two"):  # the numbers too, not only the events
        mine, theirs = restarted.reading(oid), reference.reading(oid)
        assert mine is not None
        assert theirs is not None
        assert mine.evaluation == theirs.evaluation  # type: ignore[union-attr]
